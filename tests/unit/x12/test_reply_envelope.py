"""Who a 999 goes to: the sender of what it answers, with its qualifiers, application ids and usage."""

from pathlib import Path

from connectors.clearinghouse.x12 import ControlNumbers, read_999
from gateway.api._remit_x12 import ingest_835

FULL = (Path(__file__).parents[2] / "fixtures" / "x12" / "835_full.x12").read_text()


def _isa_and_gs(text: str) -> tuple[list[str], list[str]]:
    segments = [segment.strip().split("*") for segment in text.split("~")]
    return segments[0], segments[1]


def test_a_999_answers_the_interchange_and_group_it_acknowledges() -> None:
    received = FULL.replace("*ZZ*ACMEPAYER      *ZZ*HUBRECEIVER    *", "*30*ACMEPAYER      *01*HUBRECEIVER    *", 1)
    received = received.replace("GS*HP*ACMEPAYER*HUBRECEIVER*", "GS*HP*PAYERAPP*HUBAPP*", 1)
    assert received.count("*0*T*:~") == 1  # a test interchange
    ack = ingest_835(received.encode(), lambda kind: f"{kind}_1", ControlNumbers(interchange=7, group=7)).ack
    isa, gs = _isa_and_gs(ack.ack_999)
    assert (isa[5], isa[6].strip(), isa[7], isa[8].strip()) == ("01", "HUBRECEIVER", "30", "ACMEPAYER")
    assert isa[15] == "T"  # test data is answered as test data
    assert (gs[2], gs[3]) == ("HUBAPP", "PAYERAPP")


def test_a_production_interchange_gets_a_production_999() -> None:
    received = FULL.replace("*0*T*:~", "*0*P*:~", 1)
    ack = ingest_835(received.encode(), lambda kind: f"{kind}_1", ControlNumbers(interchange=7, group=7)).ack
    assert _isa_and_gs(ack.ack_999)[0][15] == "P"


def test_an_interchange_that_asks_for_a_ta1_gets_one_before_the_999s_group() -> None:
    """ISA14 1: the sender wants an interchange acknowledgment; it rides in the 999's interchange."""
    received = FULL.replace("*0*T*:~", "*1*T*:~", 1)
    ack = ingest_835(received.encode(), lambda kind: f"{kind}_1", ControlNumbers(interchange=7, group=7)).ack
    segments = [segment.strip().split("*") for segment in ack.ack_999.split("~") if segment.strip()]
    assert [s[0] for s in segments[:3]] == ["ISA", "TA1", "GS"]
    isa = FULL.split("~", 1)[0].split("*")
    assert segments[1] == ["TA1", isa[13], isa[9], isa[10], "A", "000"]  # its ISA13, date and time: accepted
    (group,) = read_999(ack.ack_999.encode())  # and the 999 still reads
    assert group.status == "A"


def test_no_ta1_unless_asked() -> None:
    ack = ingest_835(FULL.encode(), lambda kind: f"{kind}_1", ControlNumbers(interchange=7, group=7)).ack
    assert "TA1" not in ack.ack_999
