"""Settings come from BILLING_HUB_* variables; a bad one stops start-up with a message naming it."""

from __future__ import annotations

import re

import pytest

from gateway.settings import SettingsError, load_settings
from gateway.targets import build_connectors


def test_settings_are_read_from_the_environment() -> None:
    settings = load_settings({"BILLING_HUB_MAX_WAIT_S": "5", "BILLING_HUB_IDEMPOTENCY_LEASE_S": "6", "HOME": "/x"})
    assert (settings.max_wait_s, settings.idempotency_lease_s) == (5.0, 6.0)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BILLING_HUB_NO_SUCH_THING": "1"}, "BILLING_HUB_NO_SUCH_THING"),
        ({"BILLING_HUB_MAX_WAIT_S": "31"}, "BILLING_HUB_MAX_WAIT_S"),
        # A lease no longer than the longest Prefer: wait would let a retry be answered mid-wait.
        ({"BILLING_HUB_IDEMPOTENCY_LEASE_S": "30"}, "BILLING_HUB_IDEMPOTENCY_LEASE_S"),
        ({"BILLING_HUB_MAX_WAIT_S": "10", "BILLING_HUB_IDEMPOTENCY_LEASE_S": "9.5"}, "BILLING_HUB_IDEMPOTENCY_LEASE_S"),
        # Each of these had started a hub: one spinning on its own leases (3,790 takeovers of one
        # delivery in 7 s), one delivering nothing, one listening on every interface, ...
        ({"BILLING_HUB_LEASE_S": "-1"}, "BILLING_HUB_LEASE_S"),
        ({"BILLING_HUB_DISPATCH_CONCURRENCY": "0"}, "BILLING_HUB_DISPATCH_CONCURRENCY"),
        ({"BILLING_HUB_DISPATCH_BATCH": "-1"}, "BILLING_HUB_DISPATCH_BATCH"),
        ({"BILLING_HUB_PORT": "70000"}, "BILLING_HUB_PORT"),
        ({"BILLING_HUB_PORT": "abc"}, "BILLING_HUB_PORT: Expected `int`, got `str`"),
        ({"BILLING_HUB_HOST": ""}, "BILLING_HUB_HOST"),
        ({"BILLING_HUB_DATA_DIR": ""}, "BILLING_HUB_DATA_DIR"),
        ({"BILLING_HUB_TARGETS": ""}, "BILLING_HUB_TARGETS"),
        ({"BILLING_HUB_ERP_URL": "localhost:8083"}, "BILLING_HUB_ERP_URL: expected a URL starting http:// or https://"),
        ({"BILLING_HUB_EHR_URL": "ftp://x"}, "BILLING_HUB_EHR_URL"),
        (
            {"BILLING_HUB_REDIS_URL": ""},
            "BILLING_HUB_REDIS_URL: expected a URL starting redis://, rediss:// or unix://",
        ),
        ({"BILLING_HUB_SHUTDOWN_GRACE_S": "nan"}, "BILLING_HUB_SHUTDOWN_GRACE_S"),
        ({"BILLING_HUB_CONNECTOR_TIMEOUT_S": "inf"}, "BILLING_HUB_CONNECTOR_TIMEOUT_S"),
        ({"BILLING_HUB_IDEMPOTENCY_LEASE_S": "nan"}, "BILLING_HUB_IDEMPOTENCY_LEASE_S"),
        ({"BILLING_HUB_BREAKER_FAILURE_RATE": "1.5"}, "BILLING_HUB_BREAKER_FAILURE_RATE"),
        ({"BILLING_HUB_BREAKER_MIN_CALLS": "-1"}, "BILLING_HUB_BREAKER_MIN_CALLS"),
        ({"BILLING_HUB_BACKOFF_CAP_S": "0.1"}, "BILLING_HUB_BACKOFF_CAP_S"),
        ({"BILLING_HUB_REDIS_PREFIX": ""}, "BILLING_HUB_REDIS_PREFIX"),
        ({"BILLING_HUB_PHI_HASH_KEY": " " * 16}, "BILLING_HUB_PHI_HASH_KEY"),
        ({"BILLING_HUB_HOST": " "}, "BILLING_HUB_HOST: must not be empty or blank"),
        ({"BILLING_HUB_DATA_DIR": "  "}, "BILLING_HUB_DATA_DIR"),
        ({"BILLING_HUB_ERP_URL": "http://h:99999"}, "BILLING_HUB_ERP_URL: not a URL with a valid host and port"),
        ({"BILLING_HUB_ERP_URL": "http://h:0"}, "BILLING_HUB_ERP_URL: the port must be 1-65535"),
        ({"BILLING_HUB_ERP_URL": "http://[/x"}, "BILLING_HUB_ERP_URL: not a URL with a valid host and port"),
        ({"BILLING_HUB_ERP_URL": "http://:80"}, "BILLING_HUB_ERP_URL: expected a URL starting http:// or https://"),
    ],
)
def test_a_bad_setting_is_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_reasonable_settings_are_accepted() -> None:
    settings = load_settings(
        {
            "BILLING_HUB_ERP_URL": "https://erp.example.com:8443/api",
            "BILLING_HUB_EHR_URL": "HTTP://ehr.example.com/fhir",  # a URL's scheme is case-insensitive
            "BILLING_HUB_CLEARINGHOUSE_URL": "http://user:secret@[::1]:8082/x12",  # IPv6, credentials
            "BILLING_HUB_REDIS_URL": "unix:///run/redis.sock",
            "BILLING_HUB_STATUS_CACHE_S": "0",  # no cache
            "BILLING_HUB_SHUTDOWN_GRACE_S": "0",
        }
    )
    assert (settings.erp_url, settings.status_cache_s) == ("https://erp.example.com:8443/api", 0.0)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"BILLING_HUB_TARGETS": ","}, "BILLING_HUB_TARGETS names no target"),
        ({"BILLING_HUB_TARGETS": "erp", "BILLING_HUB_ERP_OPTIONS": '{"timeout_s": 60}'},
         "BILLING_HUB_LEASE_S must be longer than the erp connector's timeouts (timeout_s 60 s"),
        ({"BILLING_HUB_TARGETS": "erp", "BILLING_HUB_ERP_OPTIONS": '{"connect_timeout_s": 60}'},
         "connect_timeout_s 60 s"),
        # A lease no longer than the connector timeout: another dispatcher would take over live attempts.
        ({"BILLING_HUB_TARGETS": "erp", "BILLING_HUB_LEASE_S": "3"},
         "BILLING_HUB_LEASE_S must be longer than the erp connector's timeouts (timeout_s 5 s"),
        ({"BILLING_HUB_TARGETS": "erp", "BILLING_HUB_ERP_OPTIONS": '{"timeout_s": 0}'}, "BILLING_HUB_ERP_OPTIONS"),
        ({"BILLING_HUB_TARGETS": "erp", "BILLING_HUB_ERP_OPTIONS": '{"timeout_s": -1}'}, "BILLING_HUB_ERP_OPTIONS"),
    ],
)  # fmt: skip
def test_the_targets_and_their_connectors_options_are_checked_at_start_up(environ: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        build_connectors(load_settings(environ))
