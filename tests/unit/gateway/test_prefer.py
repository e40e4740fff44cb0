"""``Prefer: wait=N`` (RFC 7240): delta-seconds or nothing."""

import pytest

from gateway.hub import parse_prefer_wait


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("wait=10", 10.0),
        ("respond-async, wait=5", 5.0),
        ("handling=lenient; wait=3", 3.0),
        ('wait="7"', 7.0),
        ("WAIT = 4", 4.0),
        ("wait=0000002", 2.0),  # leading zeros are still delta-seconds
        ("wait=99999999999", 30.0),  # capped at the ceiling
        (None, None),
        ("respond-async", None),
        ("wait=1e3", None),  # not delta-seconds: a preference not understood is ignored, not read as 1
        ("wait=1.5", None),
        ('wait="7', None),
        ("nowait=3", None),
    ],
)
def test_wait_is_read_only_from_delta_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_prefer_wait(header, 30.0) == seconds
