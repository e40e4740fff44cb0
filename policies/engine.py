"""A policy file compiled for use: who is calling, what each operation needs, and atomic reload.

``PolicyHolder.current`` is replaced in one assignment, so a request sees either the old policy or
the new one, never a mix; a reload that fails validation leaves the old policy in force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from policies.config import PolicyError, PolicyFile, RoutePolicy, load_policy
from policies.jwt import InvalidToken, JwtSettings, JwtVerifier, KeySetUnavailable
from policies.keys import KeyRing
from policies.ratelimit import RateLimitRule

__all__ = ["AuthFailure", "AuthUnavailable", "Caller", "CompiledPolicy", "PolicyHolder", "compile_policy"]

log = logging.getLogger("billing_hub.policies")


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    scopes: frozenset[str]
    method: str  # "api_key" | "jwt"


class AuthFailure(Exception):
    """Missing or invalid credentials; ``reason`` is safe to show (never the credential)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthUnavailable(Exception):
    """The token may be fine but its issuer's keys cannot be had right now (a 503, not a 401)."""


@dataclass(slots=True)
class CompiledPolicy:
    file: PolicyFile
    keyring: KeyRing
    jwt: JwtVerifier | None
    rules: dict[str, RateLimitRule] = field(default_factory=dict)
    # One Caller per client for API keys, built with the policy: a frozenset of scopes per request
    # would be rebuilt from the same file on every call.
    key_callers: dict[str, Caller] = field(default_factory=dict)

    def route(self, operation_id: str) -> RoutePolicy | None:
        return self.file.routes.get(operation_id)

    def rule(self, route: RoutePolicy) -> RateLimitRule:
        return self.rules[route.rate_limit]

    async def authenticate(self, api_key: str | None, authorization: str | None) -> Caller:
        if api_key:
            client_id = self.keyring.match(api_key)
            if client_id is None:
                raise AuthFailure("the API key is not valid")
            return self.key_callers[client_id]
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return await self._bearer(token.strip())
        raise AuthFailure("credentials are required: an X-API-Key header or a bearer token")

    async def _bearer(self, token: str) -> Caller:
        if self.jwt is None:
            raise AuthFailure("bearer tokens are not accepted by this hub")
        try:
            principal = await self.jwt.verify(token)
        except InvalidToken as exc:
            raise AuthFailure(f"the bearer token is not valid ({exc.reason})") from None
        except KeySetUnavailable:
            raise AuthUnavailable from None
        client = self.file.clients.get(principal.client_id)
        if client is None:
            raise AuthFailure("the bearer token names an unknown client")
        return Caller(principal.client_id, frozenset(principal.scopes) & frozenset(client.scopes), "jwt")


def compile_policy(policy: PolicyFile, http: httpx.AsyncClient | None = None) -> CompiledPolicy:
    keyring = KeyRing({h: cid for cid, c in policy.clients.items() for h in c.api_key_sha256})
    verifier = None
    if policy.jwt is not None:
        j = policy.jwt
        try:
            verifier = JwtVerifier(
                JwtSettings(
                    issuer=j.issuer,
                    audience=j.audience,
                    algorithms=list(j.algorithms),
                    jwks_file=j.jwks_file,
                    jwks_url=j.jwks_url,
                    leeway_s=j.leeway_s,
                ),
                http,
            )
        except KeySetUnavailable as exc:  # a key file is read now: missing, not JSON, no usable key
            raise PolicyError(f"jwt.jwks_file: {exc}") from None
    rules = {}
    for name, r in policy.rate_limits.items():
        try:
            rules[name] = RateLimitRule(name=name, limit=r.limit, window_s=r.window_s, burst=r.burst)
        except ValueError as exc:
            raise PolicyError(f"rate_limits.{name}: {exc}") from None
    key_callers = {cid: Caller(cid, frozenset(c.scopes), "api_key") for cid, c in policy.clients.items()}
    return CompiledPolicy(file=policy, keyring=keyring, jwt=verifier, rules=rules, key_callers=key_callers)


class PolicyHolder:
    """Holds the policy in force and reloads it from its file on request."""

    def __init__(
        self,
        path: Path,
        operations: frozenset[str],
        http: httpx.AsyncClient | None = None,
        keyed: frozenset[str] | None = None,
        longest_wait_s: float = 0.0,
    ) -> None:
        """``operations``: every operationId the file must cover; ``keyed``: those that take an
        Idempotency-Key (POST with a body), where ``idempotency = "required"`` can be enforced;
        ``longest_wait_s``: the longest a request may wait for its work (``Prefer: wait``)."""
        self.path = path
        self.operations = operations
        self.http = http
        self.keyed = keyed
        self.longest_wait_s = longest_wait_s
        self.current = self._load()
        self.last_error: str | None = None

    def _load(self) -> CompiledPolicy:
        policy = load_policy(self.path)
        missing = sorted(self.operations - set(policy.routes))
        if missing:
            raise PolicyError(f"{self.path}: no [routes.<operationId>] entry for: {', '.join(missing)}")
        if self.keyed is not None:  # the app's own holder, with all of its operations
            unknown = sorted(set(policy.routes) - self.operations)
            if unknown:  # harmless, but likely a typo the operator would want to hear of
                entries = ", ".join(f"[routes.{op}]" for op in unknown)
                log.warning("%s: %s names no operation of this hub; ignored", self.path, entries)
            # Otherwise the switch would be accepted and never enforced (no key is read there).
            required = [op for op, route in sorted(policy.routes.items()) if route.idempotency == "required"]
            unkeyed = [f"routes.{op}" for op in required if op in self.operations and op not in self.keyed]
            if unkeyed:
                raise PolicyError(
                    f'{self.path}: idempotency = "required" applies only to operations that take an '
                    f"Idempotency-Key (POST with a body): {', '.join(unkeyed)}"
                )
        if policy.idempotency.ttl_s <= self.longest_wait_s:
            # A key's in-flight claim lasts at most its TTL: a retry would store the work a second
            # time while the first request still waited for it.
            raise PolicyError(
                f"{self.path}: idempotency.ttl_s ({policy.idempotency.ttl_s:g} s) must be longer than the "
                f"longest Prefer: wait this hub allows (BILLING_HUB_MAX_WAIT_S, {self.longest_wait_s:g} s)"
            )
        return compile_policy(policy, self.http)

    def reload(self) -> str | None:
        """Swap in the file's current content; on error keep the old policy and return why."""
        try:
            self.current = self._load()
        except PolicyError as exc:
            self.last_error = str(exc)
            log.warning("policy reload refused, previous policy stays in force: %s", exc)
            return self.last_error
        self.last_error = None
        log.info("policy reloaded from %s", self.path)
        return None
