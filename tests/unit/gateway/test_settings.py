"""Settings come from BILLING_HUB_* variables; a bad one stops start-up with a message naming it."""

from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load_settings


def test_settings_are_read_from_the_environment() -> None:
    settings = load_settings({"BILLING_HUB_MAX_WAIT_S": "5", "BILLING_HUB_IDEMPOTENCY_LEASE_S": "6", "HOME": "/x"})
    assert (settings.max_wait_s, settings.idempotency_lease_s) == (5.0, 6.0)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BILLING_HUB_NO_SUCH_THING": "1"}, "BILLING_HUB_NO_SUCH_THING"),
        ({"BILLING_HUB_MAX_WAIT_S": "31"}, "max_wait_s"),
        # A lease no longer than the longest Prefer: wait would let a retry be answered mid-wait.
        ({"BILLING_HUB_IDEMPOTENCY_LEASE_S": "30"}, "idempotency_lease_s"),
        ({"BILLING_HUB_MAX_WAIT_S": "10", "BILLING_HUB_IDEMPOTENCY_LEASE_S": "9.5"}, "idempotency_lease_s"),
    ],
)
def test_a_bad_setting_is_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)
