"""OAuth2 client-credentials bearer tokens: RS*/PS*/ES* JWTs checked against a JWKS, through joserfc.

Why each rule is here:

- The key is chosen by the token's ``kid`` from *our* key set; ``jku``/``jwk``/``x5u`` headers are
  ignored, so a token can never bring its own key.
- The algorithm allow-list is checked against the header before any key is touched, and only
  asymmetric algorithms may be configured: ``none`` and ``HS*`` are refused at start-up, which rules
  out the classic "verify an RS256 public key as an HMAC secret" confusion.
- ``InvalidToken.reason`` is a short fixed phrase ("expired", "wrong audience", ...). It never
  carries the token, a claim value or joserfc's message, so it is safe to log and to put in a 401.
- A JWKS URL is cached for ``jwks_cache_s``; a token with an unknown ``kid`` (the issuer rotated its
  keys) triggers one refetch, but at most one such forced refetch per ``jwks_refetch_min_s``, so a
  flood of made-up ``kid`` values cannot turn the hub into a load generator against the issuer.
  When the issuer is unreachable, the last good key set stays in use; with none at all verification
  raises ``KeySetUnavailable`` (a 503 for the caller, not a 401: the token may well be valid).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
from joserfc import jws
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyCurveError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
)
from joserfc.jwk import Key, import_key
from joserfc.jwt import JWTClaimsRegistry

__all__ = [
    "ALLOWED_ALGORITHMS",
    "InvalidToken",
    "JwtError",
    "JwtSettings",
    "JwtVerifier",
    "KeySetUnavailable",
    "Principal",
]

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
MAX_TOKEN_LENGTH = 8192
_KEY_TYPES = frozenset({"RSA", "EC"})
_CLAIM_REASONS = {
    "iss": "wrong issuer",
    "aud": "wrong audience",
    "nbf": "not yet valid",
    "iat": "issued in the future",
    "exp": "malformed",
}


class JwtSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The bearer-token part of the policy file; exactly one of ``jwks_file`` and ``jwks_url``."""

    issuer: str
    audience: str | list[str]
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    jwks_file: str | None = None
    jwks_url: str | None = None
    leeway_s: int = 60
    jwks_cache_s: float = 300
    jwks_refetch_min_s: float = 30
    client_id_claim: str = "client_id"
    scope_claim: str = "scope"

    def __post_init__(self) -> None:
        refused = [a for a in self.algorithms if a not in ALLOWED_ALGORITHMS]
        if refused or not self.algorithms:
            raise ValueError(
                f"algorithms must be a non-empty subset of {sorted(ALLOWED_ALGORITHMS)}; refused: {refused}"
            )
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file and jwks_url")
        if not self.issuer or not self.audiences:
            raise ValueError("issuer and audience must not be empty")
        if self.leeway_s < 0 or self.jwks_cache_s < 0 or self.jwks_refetch_min_s < 0:
            raise ValueError("leeway_s, jwks_cache_s and jwks_refetch_min_s must not be negative")

    @property
    def audiences(self) -> list[str]:
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    scopes: frozenset[str] = frozenset()


class JwtError(Exception):
    """Root of this module's errors."""


class InvalidToken(JwtError):
    """The token is not acceptable; ``reason`` is a fixed short phrase with no token content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySetUnavailable(JwtError):
    """No usable key set: the JWKS file or URL is unreadable, invalid or has no signing keys."""


def parse_jwks(data: bytes) -> dict[str, Key]:
    """Signing keys (RSA and EC, ``use`` absent or ``sig``) by ``kid``; other entries are skipped."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise KeySetUnavailable("key set is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeySetUnavailable("key set has no 'keys' array")
    keys: dict[str, Key] = {}
    for entry in entries:
        key = _signing_key(entry)
        if key is not None and key.kid is not None:
            keys.setdefault(key.kid, key)
    if not keys:
        raise KeySetUnavailable("key set has no usable signing keys")
    return keys


def _signing_key(entry: object) -> Key | None:
    if not isinstance(entry, dict) or entry.get("kty") not in _KEY_TYPES:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    try:
        key = import_key(entry)
    except (JoseError, ValueError, TypeError):
        return None
    key.ensure_kid()
    return key


class _KeySource:
    """Where keys come from (file or URL) and when to fetch them again."""

    def __init__(self, settings: JwtSettings, http: httpx.AsyncClient | None, clock: Callable[[], float]) -> None:
        if settings.jwks_url is not None and http is None:
            raise ValueError("a jwks_url needs an httpx.AsyncClient")
        self._settings = settings
        self._http = http
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: dict[str, Key] = {}
        self._fresh_until = -math.inf
        self._last_forced = -math.inf
        if settings.jwks_file is not None:
            self._keys = self._read_file(settings.jwks_file)

    async def key(self, kid: str) -> Key | None:
        stale = self._settings.jwks_url is not None and self._clock() >= self._fresh_until
        if stale:
            await self._refresh(force=False)
        found = self._keys.get(kid)
        if found is None and not stale and self._may_force():  # a fetch just now needs no second one
            await self._refresh(force=True)
            found = self._keys.get(kid)
        if not self._keys:  # the issuer has been unreachable since start-up: not the token's fault
            raise KeySetUnavailable("no JWKS keys available yet")
        return found

    async def reload(self) -> None:
        """Re-read the file or refetch the URL now; on failure the old keys stay and this raises."""
        if self._settings.jwks_file is not None:
            self._keys = self._read_file(self._settings.jwks_file)
            return
        async with self._lock:
            self._keys = await self._fetch()
            self._fresh_until = self._clock() + self._settings.jwks_cache_s

    @staticmethod
    def _read_file(path: str) -> dict[str, Key]:
        # A few KiB read once at start-up or on an operator's reload: not worth a worker thread.
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeySetUnavailable(f"cannot read the JWKS file {path}: {exc.strerror}") from exc
        return parse_jwks(data)

    def _may_force(self) -> bool:
        if self._settings.jwks_url is None:
            return False
        return self._clock() - self._last_forced >= self._settings.jwks_refetch_min_s

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if force:
                if now - self._last_forced < self._settings.jwks_refetch_min_s:
                    return  # another task did the forced refetch while this one waited
                self._last_forced = now
            elif now < self._fresh_until:
                return  # another task refreshed while this one waited
            try:
                self._keys = await self._fetch()
                self._fresh_until = now + self._settings.jwks_cache_s
            except KeySetUnavailable as exc:
                # Keep the last good keys; try again after the refetch interval, not on every request.
                self._fresh_until = now + min(self._settings.jwks_cache_s, self._settings.jwks_refetch_min_s)
                log.warning("JWKS refresh failed: %s", exc)
                if not self._keys:
                    raise

    async def _fetch(self) -> dict[str, Key]:
        assert self._http is not None
        assert self._settings.jwks_url is not None
        try:
            response = await self._http.get(self._settings.jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise KeySetUnavailable(f"JWKS fetch failed ({type(exc).__name__})") from exc
        return parse_jwks(response.content)


class JwtVerifier:
    """Turns a bearer token into a ``Principal`` or raises ``InvalidToken``."""

    def __init__(
        self,
        settings: JwtSettings,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._source = _KeySource(settings, http, clock)
        self._registries = {
            alg: jws.JWSRegistry(algorithms=[alg], strict_check_header=False) for alg in settings.algorithms
        }

    async def reload(self) -> None:
        await self._source.reload()

    async def verify(self, token: str) -> Principal:
        signed = _parse(token)
        header = signed.headers()
        alg = header.get("alg")
        registry = self._registries.get(alg) if isinstance(alg, str) else None
        if registry is None or not isinstance(alg, str):
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        key = await self._source.key(kid)
        if key is None:
            raise InvalidToken("unknown key id")
        _check_signature(signed, key, alg, registry)
        claims = _claims(signed)
        self._check_claims(claims)
        return Principal(client_id=self._client_id(claims), scopes=self._scopes(claims))

    def _check_claims(self, claims: dict[str, Any]) -> None:
        s = self.settings
        registry = JWTClaimsRegistry(
            leeway=s.leeway_s,
            iss={"essential": True, "value": s.issuer},
            aud={"essential": True, "values": s.audiences},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise InvalidToken("expired") from exc
        except MissingClaimError as exc:
            raise InvalidToken("missing required claim") from exc
        except ClaimError as exc:
            raise InvalidToken(_CLAIM_REASONS.get(exc.claim, "invalid claim")) from exc

    def _client_id(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(self.settings.client_id_claim)
        if value is None:
            value = claims.get("sub")
        if not isinstance(value, str) or not value:
            raise InvalidToken("missing client id")
        return value

    def _scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        value = claims.get(self.settings.scope_claim)
        if value is None:
            value = claims.get("scp")
        if value is None:
            return frozenset()
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return frozenset(value)
        raise InvalidToken("malformed")


def _parse(token: str) -> jws.CompactSignature:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("malformed")
    try:
        return jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidToken("malformed") from exc


def _check_signature(signed: jws.CompactSignature, key: Key, alg: str, registry: jws.JWSRegistry) -> None:
    if key.alg is not None and key.alg != alg:
        raise InvalidToken("algorithm does not match key")
    try:
        valid = jws.validate_compact(signed, key, registry=registry)
    except BadSignatureError as exc:
        raise InvalidToken("bad signature") from exc
    except (KeyParameterError, InvalidKeyCurveError) as exc:  # e.g. an EC key named by an RS256 token
        raise InvalidToken("algorithm does not match key") from exc
    except (JoseError, ValueError) as exc:  # a header joserfc refuses (crit, bad types)
        raise InvalidToken("malformed") from exc
    if not valid:
        raise InvalidToken("bad signature")


def _claims(signed: jws.CompactSignature) -> dict[str, Any]:
    try:
        claims = msgspec.json.decode(signed.payload)
    except msgspec.DecodeError as exc:
        raise InvalidToken("malformed") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("malformed")
    return claims
