"""Segment serialisation, value checks and the ISA/GS/ST envelope of the X12 writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from factories import CONTROL, CREATED, ENVELOPE, split, tags

from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters
from connectors.clearinghouse.x12._writer import (
    MAX_CONTROL_NUMBER,
    ControlCounter,
    ControlNumbers,
    Envelope,
    FunctionalGroup,
    TransactionSet,
    build_interchange,
    check_delimiters,
    fit,
    render_segment,
    seg,
    set_control_number,
)

PIPES = Delimiters(element="|", repetition="!", component=">", segment="\n")


def one_set(*bodies: list, code: str = "837", version: str = "005010X222A1") -> FunctionalGroup:
    return FunctionalGroup("HC", version, [TransactionSet(code, version, body) for body in bodies])


BODY = [seg("BHT", "0019", "00", "REF1", "20240305", "1430", "CH"), seg("NM1", "41", "2", "HUB")]


# -- segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (
            seg("NM1", "85", "2", "ACME", None, None, None, None, "XX", "1234567893"),
            "NM1*85*2*ACME*****XX*1234567893~",
        ),
        (seg("REF", "G1", "AUTH", None, None), "REF*G1*AUTH~"),  # trailing empties dropped
        (seg("SV1", ("HC", "99213", "25"), "10.00", "UN", "1"), "SV1*HC:99213:25*10.00*UN*1~"),
        (seg("SV1", ("HC", "99213", "", ""), "10.00"), "SV1*HC:99213*10.00~"),  # trailing components
        (seg("CLM", "X", "1.00", None, None, ("11", "B", "1")), "CLM*X*1.00***11:B:1~"),
        (seg("HL", "1", "", "20", "1"), "HL*1**20*1~"),
        (seg("IK4", ("2", ""), None, "8"), "IK4*2**8~"),
    ],
)
def test_render_segment(segment, expected):
    assert render_segment(segment) == expected


def test_render_segment_with_other_delimiters():
    segment = seg("SV1", ("HC", "99213", "25"), "10.00", "UN", "1")
    assert render_segment(segment, PIPES) == "SV1|HC>99213>25|10.00|UN|1\n"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("A*B", "element separator"),
        ("A^B", "repetition separator"),
        ("A:B", "component separator"),
        ("A~B", "segment terminator"),
    ],
)
@pytest.mark.parametrize("as_component", [False, True])
def test_a_delimiter_inside_a_value_is_refused(value, name, as_component):
    element = ("HC", value) if as_component else value
    with pytest.raises(ValueError, match=name) as caught:
        render_segment(seg("NM1", "IL", "1", element))
    assert "NM103" in str(caught.value)
    assert value not in str(caught.value)  # the value may be PHI: never echoed


@pytest.mark.parametrize(
    ("value", "delimiters"),
    [
        ("SMITH|JONES", PIPES),
        ("A>B", PIPES),
        ("A!B", PIPES),
        ("TWO\nLINES", PIPES),
    ],
)
def test_custom_delimiters_are_refused_inside_values(value, delimiters):
    with pytest.raises(ValueError, match="X12 cannot escape"):
        render_segment(seg("N3", value), delimiters)


def test_default_delimiters_are_fine_data_under_custom_delimiters():
    assert render_segment(seg("N3", "APT*4:B~C^D"), PIPES) == "N3|APT*4:B~C^D\n"


@pytest.mark.parametrize("value", ["JOSÉ", "TAB\tHERE", "CR\r", "NUL\x00", "EMOJI\u2603"])
def test_characters_outside_the_extended_set_are_refused(value):
    with pytest.raises(ValueError, match="character set") as caught:
        render_segment(seg("NM1", "IL", "1", value))
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    "segment",
    [seg("nm1", "X"), seg("NM1"), seg("NM1", None, ""), seg("TOOLONG", "X")],
)
def test_malformed_segments_are_refused(segment):
    with pytest.raises(ValueError):
        render_segment(segment)


@pytest.mark.parametrize(
    ("delimiters", "message"),
    [
        (Delimiters(element="**", repetition="^", component=":", segment="~"), "exactly one"),
        (Delimiters(element="A", repetition="^", component=":", segment="~"), "can occur in data"),
        (Delimiters(element=" ", repetition="^", component=":", segment="~"), "can occur in data"),
        (Delimiters(element="*", repetition="*", component=":", segment="~"), "distinct"),
        (Delimiters(element="*", repetition="^", component=":", segment=""), "exactly one"),
    ],
)
def test_check_delimiters(delimiters, message):
    with pytest.raises(ValueError, match=message):
        check_delimiters(delimiters)


def test_fit_refuses_without_echoing():
    assert fit("ABC", 3, "thing") == "ABC"
    with pytest.raises(ValueError, match="thing must be 1-3") as caught:
        fit("SECRET", 3, "thing")
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ValueError, match="2-80"):
        fit("A", 80, "id", min_length=2)


# -- envelope ------------------------------------------------------------------------------------


def test_envelope_counts_and_control_numbers_match():
    written = build_interchange(
        [one_set(BODY, [*BODY, seg("REF", "EI", "123456789")])],
        envelope=ENVELOPE,
        control=CONTROL,
        created=CREATED,
    )
    segments = split(written.text)
    assert tags(written.text) == [
        "ISA",
        "GS",
        "ST",
        "BHT",
        "NM1",
        "SE",
        "ST",
        "BHT",
        "NM1",
        "REF",
        "SE",
        "GE",
        "IEA",
    ]
    isa, gs, st1, *_ = segments
    se1, st2, se2 = segments[5], segments[6], segments[10]
    ge, iea = segments[-2], segments[-1]
    assert st1[:4] == ["ST", "837", "0001", "005010X222A1"]
    assert se1 == ["SE", "4", "0001"]  # ST + 2 + SE
    assert st2[2] == "0002"
    assert se2 == ["SE", "5", "0002"]
    assert gs[6] == ge[2] == "101"
    assert ge[1] == "2"
    assert isa[13] == iea[2] == "000000101"
    assert iea[1] == "1"
    assert written.interchange_control_number == "000000101"
    assert written.group_control_numbers == ("101",)
    assert written.set_control_numbers == ("0001", "0002")


def test_isa_is_fixed_width():
    written = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=CONTROL, created=CREATED)
    isa = written.text.split("~")[0] + "~"
    assert len(isa) == 106
    fields = isa[:-1].split("*")
    assert [len(field) for field in fields[1:]] == [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1]
    assert fields[6] == "HUBSENDER      "
    assert fields[8] == "CLEARINGHOUSE  "
    assert fields[9:11] == ["240305", "1430"]
    assert fields[11:17] == ["^", "00501", "000000101", "0", "T", ":"]


def test_gs_header():
    written = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=CONTROL, created=CREATED)
    assert split(written.text)[1] == [
        "GS",
        "HC",
        "HUBSENDER",
        "CLEARINGHOUSE",
        "20240305",
        "1430",
        "101",
        "X",
        "005010X222A1",
    ]


def test_envelope_with_custom_delimiters():
    written = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=CONTROL, created=CREATED, delimiters=PIPES)
    lines = written.text.split("\n")
    assert lines[0].startswith("ISA|00|")
    assert lines[0][104] == ">"  # ISA16 component separator
    assert lines[0].split("|")[11] == "!"  # ISA11 repetition separator
    assert len(lines[0]) + 1 == 106
    assert lines[-2] == "IEA|1|000000101"
    assert "*" not in written.text


def test_newline_after_each_segment():
    written = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=CONTROL, created=CREATED, newline=True)
    assert all(line.endswith("~") for line in written.text.splitlines())
    assert written.text.endswith("~\n")


def test_several_groups_number_groups_and_sets_across_the_interchange():
    groups = [one_set(BODY), one_set(BODY, BODY)]
    control = ControlNumbers(interchange=7, group=41, first_set=9)
    written = build_interchange(groups, envelope=ENVELOPE, control=control, created=CREATED)
    segments = split(written.text)
    gs = [s for s in segments if s[0] == "GS"]
    ge = [s for s in segments if s[0] == "GE"]
    assert [g[6] for g in gs] == [e[2] for e in ge] == ["41", "42"]
    assert [e[1] for e in ge] == ["1", "2"]
    st = [s[2] for s in segments if s[0] == "ST"]
    se = [s[2] for s in segments if s[0] == "SE"]
    assert st == se == ["0009", "0010", "0011"]
    assert segments[-1] == ["IEA", "2", "000000007"]


def test_set_keys_map_control_numbers_to_caller_keys():
    group = FunctionalGroup(
        "HC",
        "005010X222A1",
        [
            TransactionSet("837", "005010X222A1", BODY, key="CLAIM-A"),
            TransactionSet("837", "005010X222A1", BODY),
        ],
    )
    written = build_interchange([group], envelope=ENVELOPE, control=CONTROL, created=CREATED)
    assert written.set_keys == {"0001": "CLAIM-A"}


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([], "at least one functional group"),
        ([FunctionalGroup("HC", "005010X222A1", [])], "at least one transaction set"),
        ([one_set([])], "at least one segment"),
        ([one_set([seg("SE", "1", "0001")])], "written by the envelope"),
    ],
)
def test_envelope_refuses_empty_or_misplaced_parts(groups, message):
    with pytest.raises(ValueError, match=message):
        build_interchange(groups, envelope=ENVELOPE, control=CONTROL, created=CREATED)


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(sender_id="S" * 16, receiver_id="R"),
        Envelope(sender_id="S", receiver_id="R", sender_qualifier="ZZZ"),
        Envelope(sender_id="S*1", receiver_id="RECV"),
    ],
)
def test_envelope_ids_must_fit_the_isa(envelope):
    with pytest.raises(ValueError):
        build_interchange([one_set(BODY)], envelope=envelope, control=CONTROL, created=CREATED)


def test_reply_envelope_swaps_parties():
    sent = Envelope(sender_id="A", receiver_id="B", sender_qualifier="01", application_sender="AA", usage="T")
    reply = sent.reply()
    assert (reply.sender_id, reply.receiver_id, reply.receiver_qualifier) == ("B", "A", "01")
    assert (reply.application_receiver, reply.usage) == ("AA", "T")


def test_created_defaults_to_now_in_utc():
    before = datetime.now(UTC).date()
    written = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=CONTROL)
    stamped = datetime.strptime(split(written.text)[1][4], "%Y%m%d").replace(tzinfo=UTC).date()
    assert before <= stamped <= datetime.now(UTC).date()
    assert written.data.startswith(b"ISA*")


# -- control numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, MAX_CONTROL_NUMBER + 1])
def test_control_numbers_are_range_checked(bad):
    with pytest.raises(ValueError, match="between 1 and"):
        ControlNumbers(interchange=bad, group=1)
    with pytest.raises(ValueError, match="between 1 and"):
        ControlNumbers(interchange=1, group=1, first_set=bad)
    with pytest.raises(ValueError, match="between 1 and"):
        set_control_number(bad)
    with pytest.raises(ValueError, match="between 1 and"):
        ControlCounter(bad)


def test_set_control_numbers_have_at_least_four_digits():
    assert [set_control_number(n) for n in (1, 12, 12345, MAX_CONTROL_NUMBER)] == [
        "0001",
        "0012",
        "12345",
        "999999999",
    ]


def test_counter_counts_and_wraps():
    counter = ControlCounter(MAX_CONTROL_NUMBER - 1)
    numbers = [counter.next() for _ in range(3)]
    assert [n.interchange for n in numbers] == [MAX_CONTROL_NUMBER - 1, MAX_CONTROL_NUMBER, 1]
    assert all(n.group == n.interchange and n.first_set == 1 for n in numbers)
    assert counter.peek() == 2


def test_counter_is_thread_safe():
    counter = ControlCounter()
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            number = counter.next().interchange
            with lock:
                seen.append(number)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 1601))


def test_counter_feeds_an_interchange():
    counter = ControlCounter(500)
    first = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=counter.next(), created=CREATED)
    second = build_interchange([one_set(BODY)], envelope=ENVELOPE, control=counter.next(), created=CREATED)
    assert (first.interchange_control_number, second.interchange_control_number) == ("000000500", "000000501")
    assert DEFAULT_DELIMITERS.segment in first.text
