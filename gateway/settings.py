"""Hub settings from ``BILLING_HUB_*`` environment variables, validated at start-up."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

__all__ = ["PREFIX", "Settings", "SettingsError", "load_settings"]

PREFIX = "BILLING_HUB_"


class SettingsError(ValueError):
    """A setting is malformed; the message names the environment variable."""


# Bounds a running hub needs: a zero, negative, NaN or infinite duration, a concurrency of 0 or an
# empty host had each started a hub that delivered nothing, spun on its own leases, or listened on
# every interface.
_DAY_S = 86_400.0
Seconds = Annotated[float, msgspec.Meta(gt=0, le=_DAY_S)]
Count = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
NonEmpty = Annotated[str, msgspec.Meta(pattern=r"\S")]  # something besides blanks
# http(s) in any case and no white space; its host and port are checked below, by urlsplit (IPv6
# literals and user:password@ included).
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^(?i:https?)://\S+$")]


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    host: NonEmpty = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    port: Annotated[int, msgspec.Meta(ge=1, le=65_535)] = 8080
    data_dir: NonEmpty = ".data"
    # normal: WAL without fsync per commit (survives a process crash, not a power cut); full: fsync.
    durability: Literal["normal", "full"] = "full"
    ehr_url: HttpUrl = "http://127.0.0.1:8081"
    clearinghouse_url: HttpUrl = "http://127.0.0.1:8082"
    erp_url: HttpUrl = "http://127.0.0.1:8083"
    # Which target systems this hub talks to (comma list); work for a missing one is dead-lettered.
    targets: NonEmpty = "ehr,erp,clearinghouse"
    # Which installed connector serves each target (its billing_hub.connectors entry-point name), and
    # its own config keys as a JSON object its config spec checks (gateway/targets.py).
    ehr_connector: str = "ehr-fhir"
    erp_connector: str = "erp-ledger"
    clearinghouse_connector: str = "clearinghouse-x12"
    ehr_options: str = "{}"
    erp_options: str = "{}"
    clearinghouse_options: str = "{}"
    connector_timeout_s: Seconds = 5.0
    status_timeout_s: Seconds = 2.0
    status_cache_s: Annotated[float, msgspec.Meta(ge=0, le=_DAY_S)] = 30.0
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    dispatch_concurrency: Count = 64
    dispatch_batch: Count = 64
    # Retry budget per delivery (tenacity policies over the durable outbox), then dead letter.
    retry_max_attempts: Count = 8
    retry_max_elapsed_s: Annotated[float, msgspec.Meta(gt=0, le=30 * _DAY_S)] = 900.0
    backoff_base_s: Seconds = 0.5
    backoff_cap_s: Seconds = 60.0
    # Circuit breaker per connector.
    breaker_failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    breaker_window_s: Seconds = 30.0
    breaker_min_calls: Count = 10
    breaker_cool_down_s: Seconds = 5.0
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0, le=3_600)] = 10.0
    lease_s: Seconds = 30.0
    max_wait_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 30.0
    # False: this process only accepts work; `billing-hub dispatch` processes deliver it.
    dispatcher_enabled: bool = True
    # How often an idle dispatcher looks for work it was not woken for (stored by another process).
    dispatch_idle_poll_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.25
    # Policy file (TOML); empty means the packaged policies/default.toml with the demo client.
    policy_file: str = ""
    # Where rate-limit counters, idempotency records and the audit chain live.
    state_backend: Literal["embedded", "redis"] = "embedded"
    redis_url: Annotated[str, msgspec.Meta(pattern=r"^(?i:rediss?|unix)://\S+$")] = "redis://127.0.0.1:6379/0"
    redis_prefix: NonEmpty = "billing-hub:"
    # Key for the tags that stand in for identifiers in audit records (>= 16 bytes); share it
    # between instances to correlate across them. Empty: a random key per process.
    phi_hash_key: str = ""
    # How long a request holding an Idempotency-Key keeps others with the same key out (409) if it
    # never finishes; longer than the slowest request (Prefer: wait is at most 30 s).
    idempotency_lease_s: Seconds = 60.0
    # Spans: "auto" exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set and is off otherwise;
    # "discard" runs the SDK pipeline without exporting (to measure tracing's cost).
    trace_exporter: Literal["auto", "otlp", "console", "discard", "off"] = "auto"

    def __post_init__(self) -> None:
        # Messages name the variable: msgspec reports them without a path.
        if self.phi_hash_key and len(self.phi_hash_key.strip().encode()) < 16:
            raise ValueError(f"{PREFIX}PHI_HASH_KEY must be at least 16 bytes, not counting blanks")
        if self.idempotency_lease_s <= self.max_wait_s:  # else a retry would be answered mid-wait
            raise ValueError(
                f"{PREFIX}IDEMPOTENCY_LEASE_S must be longer than {PREFIX}MAX_WAIT_S (the longest Prefer: wait)"
            )
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError(f"{PREFIX}BACKOFF_CAP_S must be at least {PREFIX}BACKOFF_BASE_S")
        for target in ("ehr", "clearinghouse", "erp"):
            problem = _url_problem(getattr(self, f"{target}_url"))
            if problem:
                raise ValueError(f"{PREFIX}{target.upper()}_URL: {problem}")


def _url_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises past 65535
    except ValueError:
        return "not a URL with a valid host and port"
    if not parts.hostname:
        return "expected a URL starting http:// or https://, with a host"
    if port is not None and port < 1:
        return "the port must be 1-65535"
    return None


# msgspec's "... - at `$.field`": the field, named as the variable it came from.
_AT_FIELD = re.compile(r"^(?P<message>.*?) - at `\$\.(?P<field>[a-z_0-9]+)`$", re.DOTALL)


def _named(error: msgspec.ValidationError) -> str:
    match = _AT_FIELD.match(str(error))
    if match is None:
        return str(error)
    field, message = match["field"], match["message"]
    if "matching regex" in message:  # the pattern itself says little to an operator
        if field == "redis_url":
            message = "expected a URL starting redis://, rediss:// or unix://"
        elif field.endswith("_url"):
            message = "expected a URL starting http:// or https://, with a host"
        else:
            message = "must not be empty or blank"
    return f"{PREFIX}{field.upper()}: {message}"


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
        raise SettingsError(_named(exc)) from None
