"""Envelope checks: every control number and count, missing trailers, truncation, order."""

from __future__ import annotations

import pytest

from connectors.clearinghouse.x12._envelope import EnvelopeReader, GroupEnd, TransactionSet
from connectors.clearinghouse.x12._model import X12Error

ISA = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*{}*0*T*:~"


def interchange(*groups: list[list[str]], control: str = "000000001", trailer: str | None = None) -> str:
    """ISA, per group GS, its sets (each a list of body segments) with ST/SE, GE, then IEA.

    Counts and control numbers are right unless a test edits the text afterwards.
    """
    out = [ISA.format(control)]
    number = 0
    for group_number, sets in enumerate(groups, start=1):
        out.append(f"GS*HP*SENDER*RECEIVER*20240101*1200*{group_number}*X*005010X221A1~")
        for segments in sets:
            number += 1
            out.append(f"ST*835*{number:04d}~")
            out += [segment + "~" for segment in segments]
            out.append(f"SE*{len(segments) + 2}*{number:04d}~")
        out.append(f"GE*{len(sets)}*{group_number}~")
    out.append(trailer if trailer is not None else f"IEA*{len(groups)}*{control}~")
    return "\n".join(out) + "\n"


def read(text: str) -> list[tuple[str, list[list[str]] | GroupEnd, list[str]]]:
    """(kind, body or group end, issue codes) per item, bodies fully consumed."""
    result: list[tuple[str, list[list[str]] | GroupEnd, list[str]]] = []
    for item in EnvelopeReader(text.encode()):
        if isinstance(item, TransactionSet):
            segments = list(item)
            result.append(("set", segments, [i.code for i in item.issues]))
        else:
            result.append(("group", item, [i.code for i in item.issues]))
    return result


def test_sets_and_groups_in_order_with_their_identity() -> None:
    text = interchange([["BPR*A"], ["BPR*B", "TRN*1*X"]], [["BPR*C"]])
    items: list[TransactionSet | GroupEnd] = []
    bodies = []
    for item in EnvelopeReader(text.encode()):
        items.append(item)
        if isinstance(item, TransactionSet):
            bodies.append(list(item))
    kinds = ["set" if isinstance(item, TransactionSet) else "group" for item in items]
    assert kinds == ["set", "set", "group", "set", "group"]
    assert bodies == [[["BPR", "A"]], [["BPR", "B"], ["TRN", "1", "X"]], [["BPR", "C"]]]
    first, second, end = items[0], items[1], items[2]
    assert isinstance(first, TransactionSet)
    assert first.envelope.control_number == "0001"
    assert first.envelope.position == 3
    assert first.envelope.group_control_number == "1"
    assert first.envelope.interchange_control_number == "000000001"
    assert first.envelope.version == "005010X221A1"
    assert first.envelope.group.interchange.sender_id == "SENDER"
    assert isinstance(second, TransactionSet)
    assert (second.envelope.position, second.segment_count) == (6, 4)
    assert isinstance(end, GroupEnd)
    assert (end.set_count, end.declared_count, end.issues, end.position) == (2, 2, [], 10)


def test_several_interchanges_in_one_input() -> None:
    text = interchange([["BPR*A"]]) + interchange([["BPR*B"]], control="000000002")
    found = read(text)
    assert [kind for kind, _, _ in found] == ["set", "group", "set", "group"]
    assert all(codes == [] for _, _, codes in found)


def test_se_control_number_mismatch() -> None:
    text = interchange([["BPR*A"]]).replace("SE*3*0001", "SE*3*0009")
    (_, _, codes), *_ = read(text)
    assert codes == ["3"]


def test_se_count_mismatch_names_the_se_position() -> None:
    text = interchange([["BPR*A", "TRN*1"]]).replace("SE*4*0001", "SE*5*0001")
    tset = next(iter(EnvelopeReader(text.encode())))
    assert isinstance(tset, TransactionSet)
    list(tset)
    (issue,) = tset.issues
    assert (issue.segment_id, issue.position, issue.code, issue.control_number) == ("SE", 6, "4", "0001")
    assert "4 segments" in issue.message


def test_missing_se_is_reported_and_the_next_set_is_still_read() -> None:
    text = interchange([["BPR*A"], ["BPR*B"]]).replace("SE*3*0001~\n", "")
    found = read(text)
    assert found[0][0] == "set"
    assert found[0][2] == ["2"]
    assert found[1][1] == [["BPR", "B"]]
    assert found[1][2] == []


def test_duplicate_st02_in_a_group() -> None:
    text = interchange([["BPR*A"], ["BPR*B"]]).replace("0002", "0001")
    found = read(text)
    assert found[1][2] == ["23"]


def test_group_control_number_and_set_count_mismatch() -> None:
    text = interchange([["BPR*A"]]).replace("GE*1*1", "GE*2*7")
    _, (_, end, codes) = read(text)
    assert codes == ["4", "5"]
    assert isinstance(end, GroupEnd)
    assert (end.set_count, end.declared_count, end.position) == (1, 2, 6)


def test_missing_ge_before_the_next_gs_and_before_iea() -> None:
    text = interchange([["BPR*A"]], [["BPR*B"]]).replace("GE*1*1~\n", "").replace("GE*1*2~\n", "")
    found = read(text)
    assert [(kind, codes) for kind, _, codes in found] == [("set", []), ("group", ["3"]), ("set", []), ("group", ["3"])]


@pytest.mark.parametrize(
    ("edit", "segment_id", "code", "position"),
    [
        (("IEA*1*000000001", "IEA*1*000000002"), "IEA", "001", 7),
        (("IEA*1*", "IEA*2*"), "IEA", "021", 7),
        (("GS*HP", "BPR*X~\nGS*HP"), "BPR", "024", 2),
        (("SE*3*0001~\n", "SE*3*0001~\nBPR*Z~\n"), "BPR", "024", 6),
        (("GE*1*1~\nIEA*1*000000001~\n", "GE*1*1~\n" + ISA.format("000000002") + "\n"), "IEA", "023", 7),
    ],
)
def test_interchange_level_errors_are_fatal(edit: tuple[str, str], segment_id: str, code: str, position: int) -> None:
    text = interchange([["BPR*A"]]).replace(*edit)
    with pytest.raises(X12Error) as caught:
        read(text)
    issue = caught.value.issue
    assert (issue.segment_id, issue.code, issue.position) == (segment_id, code, position)


def test_st_outside_a_group_is_fatal() -> None:
    text = interchange([["BPR*A"]]).replace("GS*HP*SENDER*RECEIVER*20240101*1200*1*X*005010X221A1~\n", "")
    with pytest.raises(X12Error, match="outside a functional group") as caught:
        read(text)
    assert caught.value.issue.position == 2


@pytest.mark.parametrize(
    ("cut_after", "missing", "position"),
    [("BPR*A~\n", "SE", 5), ("SE*3*0001~\n", "GE", 6), ("GE*1*1~\n", "IEA", 7)],
)
def test_truncated_input_is_fatal(cut_after: str, missing: str, position: int) -> None:
    text = interchange([["BPR*A"]])
    text = text[: text.index(cut_after) + len(cut_after)]
    with pytest.raises(X12Error, match="truncated") as caught:
        read(text)
    assert (caught.value.issue.segment_id, caught.value.issue.code, caught.value.issue.position) == (
        missing,
        "023",
        position,
    )


def test_a_consumer_that_stops_early_does_not_desynchronise_the_envelope() -> None:
    text = interchange([["BPR*A", "TRN*1", "CLP*X"], ["BPR*B"]])
    seen = []
    for item in EnvelopeReader(text.encode()):
        if isinstance(item, TransactionSet):
            seen.append(next(iter(item)))  # read one body segment, abandon the rest
            assert item.issues == [] or item.done
    assert seen == [["BPR", "A"], ["BPR", "B"]]


def test_the_raw_protocol_hands_the_trailer_back() -> None:
    text = interchange([["BPR*A"]]).replace("SE*3*0001", "SE*9*0001")
    tset = next(iter(EnvelopeReader(text.encode())))
    assert isinstance(tset, TransactionSet)
    for segment in tset.raw:
        if segment[0] == "SE":
            tset.end(segment)
            break
    assert [i.code for i in tset.issues] == ["4"]
    assert tset.segment_count == 3
