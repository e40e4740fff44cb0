"""The policy file: one TOML document, validated with msgspec at start-up and on every reload.

An invalid file never half-applies: ``load_policy`` either returns a complete ``PolicyFile`` or raises
``PolicyError`` whose message names the bad key (``$.rate_limits.writes.limit``) or TOML line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_BODY_CEILING",
    "MAX_IDEMPOTENCY_TTL_S",
    "MAX_JSON_DEPTH_CEILING",
    "SCOPES",
    "ClientPolicy",
    "IdempotencyPolicy",
    "JwtPolicy",
    "LimitsPolicy",
    "PolicyError",
    "PolicyFile",
    "RateLimitPolicy",
    "RoutePolicy",
    "load_policy",
    "parse_policy",
]

Scope = Literal[
    "accounts:read",
    "accounts:write",
    "claims:read",
    "claims:write",
    "remittances:read",
    "remittances:write",
    "journals:read",
    "journals:write",
    "transactions:read",
    "admin",
]
SCOPES: frozenset[str] = frozenset(Scope.__args__)  # type: ignore[attr-defined]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]
# A media type as requests are compared with it: lower case, no parameters (the hub drops a
# request's parameters and lower-cases it; an entry written otherwise could never match).
MediaType = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$(?!\n)",
        description="a media type in lower case without parameters, e.g. application/json",
    ),
]
Positive = Annotated[int, msgspec.Meta(ge=1)]
# The largest body any route may accept: the app's own ceiling is this, so a policy can never allow
# more than the server would read (the whole body is held in memory while it is checked).
MAX_BODY_CEILING = 128 * 1024 * 1024
MAX_JSON_DEPTH_CEILING = 256
MAX_IDEMPOTENCY_TTL_S = 366 * 86_400
BodyBytes = Annotated[int, msgspec.Meta(ge=1, le=MAX_BODY_CEILING)]


class PolicyError(ValueError):
    """The policy file is unusable; the message says where."""


class _Section(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class ClientPolicy(_Section, kw_only=True, frozen=True):
    """A client system. Only SHA-256 hashes of its API keys are ever written down."""

    api_key_sha256: list[Sha256Hex] = []
    scopes: list[Scope] = []
    description: str = ""


class JwtPolicy(_Section, kw_only=True, frozen=True):
    """OAuth2 client-credentials bearer tokens: the client id claim must name a client above."""

    issuer: str
    audience: str | list[str]
    jwks_file: str | None = None  # a relative path is relative to the policy file's folder
    jwks_url: str | None = None
    algorithms: list[Literal["RS256", "ES256"]] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    leeway_s: Annotated[int, msgspec.Meta(ge=0, le=600)] = 60

    def __post_init__(self) -> None:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file or jwks_url")


# A window of inf (or 1e300) passed "> 0" and then overflowed the limiter's microsecond arithmetic at
# start-up, and on every reload: a year is longer than any rate a policy means.
_YEAR_S = 366 * 86_400
_MAX_COUNT = 1_000_000_000


class RateLimitPolicy(_Section, kw_only=True, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=_MAX_COUNT)]
    window_s: Annotated[float, msgspec.Meta(gt=0, le=_YEAR_S)]
    burst: Annotated[int, msgspec.Meta(ge=1, le=_MAX_COUNT)] | None = None
    # When the shared store (Redis) cannot be reached: let calls through, or answer 503.
    on_backend_error: Literal["open", "closed"] = "open"


class RoutePolicy(_Section, kw_only=True, frozen=True):
    """What one operation (by its OpenAPI operationId) requires."""

    scope: Scope
    rate_limit: str
    idempotency: Literal["required", "optional", "off"] = "optional"
    max_body_bytes: BodyBytes | None = None  # overrides [limits] for this operation
    content_types: list[MediaType] | None = None  # overrides [limits] for this operation


class LimitsPolicy(_Section, kw_only=True, frozen=True):
    max_body_bytes: BodyBytes = 1_048_576
    # Above this the parsers' own recursion limits (Python's, about 1,000 frames, shared with the
    # server's call stack) would refuse a body the policy allows.
    max_json_depth: Annotated[int, msgspec.Meta(ge=1, le=MAX_JSON_DEPTH_CEILING)] = 32
    max_array_length: Positive = 10_000
    content_types: list[MediaType] = msgspec.field(default_factory=lambda: ["application/json"])
    # A body still arriving after this long is refused (408): a client that sends headers and then
    # trickles or withholds the body would otherwise hold its connection and request open for good.
    # One timer per loop looks for overdue bodies every 0.25 s (gateway/deadlines.py: cheaper than a
    # timer per request), so the 408 may come up to 0.25 s after this.
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0


class IdempotencyPolicy(_Section, kw_only=True, frozen=True):
    # At most a year: the stores turn it into an expiry in milliseconds, which inf (or 1e16 s, past
    # Redis's range) cannot be, and every keyed call would fail.
    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_IDEMPOTENCY_TTL_S)] = 86_400.0


class PolicyFile(_Section, kw_only=True, frozen=True):
    version: Literal[1] = 1
    clients: dict[str, ClientPolicy]
    jwt: JwtPolicy | None = None
    rate_limits: dict[str, RateLimitPolicy]
    routes: dict[str, RoutePolicy]
    limits: LimitsPolicy = LimitsPolicy()
    idempotency: IdempotencyPolicy = IdempotencyPolicy()

    def __post_init__(self) -> None:
        for operation, route in self.routes.items():
            if route.rate_limit not in self.rate_limits:
                raise ValueError(
                    f"routes.{operation}.rate_limit names {route.rate_limit!r}, which is not in rate_limits"
                )
        hashes = [h for c in self.clients.values() for h in c.api_key_sha256]
        if len(hashes) != len(set(hashes)):
            raise ValueError("the same api_key_sha256 is listed for more than one client")


def parse_policy(text: str, source: str = "policy file") -> PolicyFile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, PolicyFile)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"{source}: {_name_the_key(raw, exc)}") from None


_TABLES: dict[str, type[_Section]] = {"clients": ClientPolicy, "rate_limits": RateLimitPolicy, "routes": RoutePolicy}


def _name_the_key(raw: dict[str, object], exc: msgspec.ValidationError) -> str:
    """msgspec writes ``$.clients[...]`` for a table entry; find which entry and say its name."""
    message = str(exc)
    for table, entry_type in _TABLES.items():
        marker = f"$.{table}[...]"
        entries = raw.get(table)
        if marker not in message or not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            try:
                msgspec.convert(value, entry_type)
            except msgspec.ValidationError as entry_exc:
                text = str(entry_exc)
                if "- at `$" in text:
                    return text.replace("- at `$", f"- at `$.{table}.{key}", 1)
                return f"{text} - at `$.{table}.{key}`"
    return message


def load_policy(path: Path) -> PolicyFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        # Left to propagate, it reached the app's handler for requests that are not UTF-8 (a 400
        # blaming the client of a reload) and crashed start-up and SIGHUP with a traceback.
        raise PolicyError(f"{path}: not valid UTF-8 (TOML is UTF-8): byte {exc.start} cannot be decoded") from None
    policy = parse_policy(text, str(path))
    jwt = policy.jwt
    if jwt is not None and jwt.jwks_file is not None and not Path(jwt.jwks_file).is_absolute():
        # Beside the policy file, wherever the hub was started from.
        keys = str(path.parent / jwt.jwks_file)
        policy = msgspec.structs.replace(policy, jwt=msgspec.structs.replace(jwt, jwks_file=keys))
    return policy
