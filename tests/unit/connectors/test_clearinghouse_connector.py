"""The X12 clearinghouse connector's own refusals (the wire exchanges are in tests/contract)."""

import msgspec
import pytest

from canonical import decode
from canonical.v1 import Claim
from connectors import RejectedError, make_client
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
