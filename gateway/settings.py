"""Hub settings from ``BILLING_HUB_*`` environment variables, validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = ["PREFIX", "Settings", "SettingsError", "load_settings"]

PREFIX = "BILLING_HUB_"


class SettingsError(ValueError):
    """A setting is malformed; the message names the environment variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    port: int = 8080
    data_dir: str = ".data"
    # normal: WAL without fsync per commit (survives a process crash, not a power cut); full: fsync.
    durability: Literal["normal", "full"] = "full"
    ehr_url: str = "http://127.0.0.1:8081"
    clearinghouse_url: str = "http://127.0.0.1:8082"
    erp_url: str = "http://127.0.0.1:8083"
    # Which target systems this hub talks to (comma list); work for a missing one is dead-lettered.
    targets: str = "ehr,erp,clearinghouse"
    # Which installed connector serves each target (its billing_hub.connectors entry-point name), and
    # its own config keys as a JSON object its config spec checks (gateway/targets.py).
    ehr_connector: str = "ehr-fhir"
    erp_connector: str = "erp-ledger"
    clearinghouse_connector: str = "clearinghouse-x12"
    ehr_options: str = "{}"
    erp_options: str = "{}"
    clearinghouse_options: str = "{}"
    connector_timeout_s: float = 5.0
    status_timeout_s: float = 2.0
    status_cache_s: float = 30.0
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    dispatch_concurrency: int = msgspec.field(default=64)
    dispatch_batch: int = 64
    # Retry budget per delivery (tenacity policies over the durable outbox), then dead letter.
    retry_max_attempts: int = 8
    retry_max_elapsed_s: float = 900.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    # Circuit breaker per connector.
    breaker_failure_rate: float = 0.5
    breaker_window_s: float = 30.0
    breaker_min_calls: int = 10
    breaker_cool_down_s: float = 5.0
    shutdown_grace_s: float = 10.0
    lease_s: float = 30.0
    max_wait_s: float = 30.0
    # False: this process only accepts work; `billing-hub dispatch` processes deliver it.
    dispatcher_enabled: bool = True
    # How often an idle dispatcher looks for work it was not woken for (stored by another process).
    dispatch_idle_poll_s: float = 0.25
    # Policy file (TOML); empty means the packaged policies/default.toml with the demo client.
    policy_file: str = ""
    # Where rate-limit counters, idempotency records and the audit chain live.
    state_backend: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "billing-hub:"
    # Key for the tags that stand in for identifiers in audit records (>= 16 bytes); share it
    # between instances to correlate across them. Empty: a random key per process.
    phi_hash_key: str = ""
    # How long a request holding an Idempotency-Key keeps others with the same key out (409) if it
    # never finishes; longer than the slowest request (Prefer: wait is at most 30 s).
    idempotency_lease_s: float = 60.0
    # Spans: "auto" exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set and is off otherwise;
    # "discard" runs the SDK pipeline without exporting (to measure tracing's cost).
    trace_exporter: Literal["auto", "otlp", "console", "discard", "off"] = "auto"

    def __post_init__(self) -> None:
        if self.retry_max_attempts < 1:
            raise ValueError("retry_max_attempts must be at least 1")
        if self.phi_hash_key and len(self.phi_hash_key.encode()) < 16:
            raise ValueError("phi_hash_key must be at least 16 bytes")
        if not 0 < self.dispatch_idle_poll_s <= 60:
            raise ValueError("dispatch_idle_poll_s must be in (0, 60]")
        if not 0 < self.max_wait_s <= 30:
            raise ValueError("max_wait_s must be in (0, 30]")
        if self.idempotency_lease_s <= self.max_wait_s:  # else a retry would be answered mid-wait
            raise ValueError("idempotency_lease_s must be longer than max_wait_s (the longest Prefer: wait)")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    raw: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name not in fields:
            raise SettingsError(f"{key} is not a known setting")
        raw[name] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid {PREFIX}* setting: {exc}") from None
