"""The X12 clearinghouse connector's own refusals (the wire exchanges are in tests/contract)."""

import httpx
import msgspec
import pytest

from canonical import decode
from canonical.v1 import Claim
from connectors import RejectedError, make_client
from connectors._http import ConnectorClient
from connectors.clearinghouse import X12ClearinghouseConfig, X12ClearinghouseConnector
from tests import factories


async def test_a_claim_x12_cannot_carry_is_rejected_not_retried() -> None:
    """Had it got past the API, the claim is refused for good (and the breaker is not told): no
    retry makes an 837P carry a '~' in a name."""
    claim = decode(msgspec.json.encode(factories.claim(family="O~Brien")), Claim)
    config = X12ClearinghouseConfig(base_url="http://127.0.0.1:9")  # never reached: writing fails first
    house = X12ClearinghouseConnector(config, make_client(config.base_url, timeout_s=1, connect_timeout_s=1))
    try:
        with pytest.raises(RejectedError) as rejected:
            await house.submit_claim(claim, "ref-1")
    finally:
        await house.aclose()
    assert rejected.value.code == "x12-charset"
    assert "Brien" not in rejected.value.message


def _rejecting_999(ik3: str) -> bytes:
    """A clearinghouse's 999 rejecting our 837P set 0001, whose IK3 segment is ``ik3``."""
    segments = [
        "ISA*00*          *00*          *ZZ*CLEARINGHOUSE  *ZZ*HUBSENDER      *240305*1430*^*00501*000000101*0*T*:",
        "GS*FA*CLEARINGHOUSE*HUBSENDER*20240305*1430*101*X*005010X231A1",
        "ST*999*0001*005010X231A1",
        "AK1*HC*1*005010X222A1",
        "AK2*837*0001*005010X222A1",
        ik3,
        "IK5*R*5",
        "AK9*R*1*1*0",
        "SE*7*0001",
        "GE*1*101",
        "IEA*1*000000101",
    ]
    return "~".join(segments).encode() + b"~"


@pytest.mark.parametrize("ik3", ["IK3*Famsentinel*21**8", "IK3*NM1*21**Famsentinel"])
async def test_a_999_rejection_keeps_no_text_of_the_clearinghouse_but_ids_and_codes(ik3: str) -> None:
    """A clearinghouse whose 999 repeats input text in IK301 or IK304 (a name split off by a stray
    delimiter) must not put it into the delivery's error: dead letters and attempt records keep it."""
    config = X12ClearinghouseConfig(base_url="http://clearinghouse.test")
    answer = _rejecting_999(ik3)
    client = ConnectorClient(
        base_url=config.base_url, transport=httpx.MockTransport(lambda request: httpx.Response(200, content=answer))
    )
    house = X12ClearinghouseConnector(config, client)
    try:
        with pytest.raises(RejectedError) as rejected:
            await house.submit_claim(decode(msgspec.json.encode(factories.claim()), Claim), "ref-1")
    finally:
        await house.aclose()
    assert rejected.value.code == "999"
    assert "Famsentinel" not in rejected.value.message
    assert "@21" in rejected.value.message  # where it was is still said
