"""Bearer JWTs: real keys made with joserfc, real signatures, JWKS from a file or an httpx transport."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from policies.jwt import InvalidToken, JwtSettings, JwtVerifier, KeySetUnavailable, Principal

ISSUER = "https://idp.example.test/"
AUDIENCE = "billing-hub"
JWKS_URL = "https://idp.example.test/.well-known/jwks.json"
SAFE_REASONS = {
    "algorithm does not match key",
    "algorithm not allowed",
    "bad signature",
    "expired",
    "issued in the future",
    "malformed",
    "missing client id",
    "missing key id",
    "missing required claim",
    "not yet valid",
    "unknown key id",
    "wrong audience",
    "wrong issuer",
}


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})


@pytest.fixture(scope="module")
def rsa_impostor() -> RSAKey:
    """A different key that claims the same kid: its signatures must not verify."""
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="module")
def rsa_next() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


def _jwks(*keys: Key) -> bytes:
    return json.dumps({"keys": [k.as_dict(private=False) for k in keys]}).encode()


def _settings(**overrides: Any) -> JwtSettings:
    fields: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE} | overrides
    return JwtSettings(**fields)


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key: RSAKey, ec_key: ECKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(_jwks(rsa_key, ec_key))
    return path


@pytest.fixture
def verifier(jwks_file: Path) -> JwtVerifier:
    return JwtVerifier(_settings(jwks_file=str(jwks_file)))


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "client_id": "revcycle",
        "sub": "svc-revcycle",
        "scope": "claims:read claims:write",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: Key, alg: str = "RS256", kid: str | None = "rsa-1", **claims: Any) -> str:
    header: dict[str, Any] = {"alg": alg} | ({"kid": kid} if kid is not None else {})
    return jwt.encode(header, _claims(**claims), key, algorithms=[alg])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    reason = info.value.reason
    assert reason in SAFE_REASONS
    assert str(info.value) == reason
    if token:
        assert token not in reason
    return reason


# --- valid tokens ---------------------------------------------------------------------------------


async def test_valid_rs256(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    principal = await verifier.verify(_sign(rsa_key))
    assert principal == Principal(client_id="revcycle", scopes=frozenset({"claims:read", "claims:write"}))


async def test_valid_es256(verifier: JwtVerifier, ec_key: ECKey) -> None:
    principal = await verifier.verify(_sign(ec_key, "ES256", "ec-1"))
    assert principal.client_id == "revcycle"


async def test_sub_is_the_fallback_client_id_and_scp_list_is_accepted(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    token = _sign(rsa_key, client_id=None, scope=None, scp=["journals:write", "admin"])
    assert await verifier.verify(token) == Principal(
        client_id="svc-revcycle", scopes=frozenset({"journals:write", "admin"})
    )


async def test_no_scope_claim_means_no_scopes(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert (await verifier.verify(_sign(rsa_key, scope=None))).scopes == frozenset()


async def test_custom_claim_names(jwks_file: Path, rsa_key: RSAKey) -> None:
    v = JwtVerifier(_settings(jwks_file=str(jwks_file), client_id_claim="azp", scope_claim="roles"))
    principal = await v.verify(_sign(rsa_key, azp="finance", roles=["accounts:read"]))
    assert principal == Principal(client_id="finance", scopes=frozenset({"accounts:read"}))


async def test_one_of_several_audiences(jwks_file: Path, rsa_key: RSAKey) -> None:
    v = JwtVerifier(_settings(jwks_file=str(jwks_file), audience=["other", AUDIENCE]))
    assert (await v.verify(_sign(rsa_key, aud=["someone-else", AUDIENCE]))).client_id == "revcycle"
    assert await _reason(v, _sign(rsa_key, aud=["someone-else"])) == "wrong audience"


async def test_expiry_and_not_before_within_leeway_are_accepted(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    now = int(time.time())
    assert await verifier.verify(_sign(rsa_key, exp=now - 30))
    assert await verifier.verify(_sign(rsa_key, nbf=now + 30, iat=now + 30))


# --- refused tokens -------------------------------------------------------------------------------


async def test_expired(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, exp=int(time.time()) - 120)) == "expired"


async def test_expired_with_zero_leeway(jwks_file: Path, rsa_key: RSAKey) -> None:
    v = JwtVerifier(_settings(jwks_file=str(jwks_file), leeway_s=0))
    assert await _reason(v, _sign(rsa_key, exp=int(time.time()) - 5)) == "expired"


async def test_not_yet_valid(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, nbf=int(time.time()) + 300)) == "not yet valid"


async def test_issued_in_the_future(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, iat=int(time.time()) + 300)) == "issued in the future"


async def test_wrong_issuer(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, iss="https://evil.example/")) == "wrong issuer"


async def test_wrong_audience(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, aud="another-api")) == "wrong audience"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud"])
async def test_required_claims(verifier: JwtVerifier, rsa_key: RSAKey, claim: str) -> None:
    assert await _reason(verifier, _sign(rsa_key, **cast(dict[str, Any], {claim: None}))) == "missing required claim"


async def test_no_client_id(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, client_id=None, sub=None)) == "missing client id"


async def test_bad_signature_from_another_key_with_the_same_kid(verifier: JwtVerifier, rsa_impostor: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_impostor)) == "bad signature"


async def test_tampered_payload(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    header, _, signature = _sign(rsa_key).split(".")
    forged = _b64(_claims(client_id="admin-tool", scope="admin"))
    assert await _reason(verifier, f"{header}.{forged}.{signature}") == "bad signature"


async def test_alg_none_is_refused(verifier: JwtVerifier) -> None:
    token = f"{_b64({'alg': 'none', 'kid': 'rsa-1'})}.{_b64(_claims())}."
    assert await _reason(verifier, token) == "algorithm not allowed"


async def test_hs256_with_the_public_key_as_secret_is_refused(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    """The classic key-confusion attack: HMAC keyed with the published RSA key."""
    secret = OctKey.import_key(json.dumps(rsa_key.as_dict(private=False)).encode())
    token = _sign(secret, "HS256", "rsa-1")
    assert await _reason(verifier, token) == "algorithm not allowed"


async def test_algorithm_outside_the_configured_list(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, "RS384")) == "algorithm not allowed"


async def test_rs256_header_naming_an_ec_key(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, "RS256", "ec-1")) == "algorithm does not match key"


async def test_key_with_a_pinned_alg(tmp_path: Path, rsa_key: RSAKey) -> None:
    path = tmp_path / "pinned.json"
    pinned = rsa_key.as_dict(private=False) | {"alg": "PS256"}
    path.write_text(json.dumps({"keys": [pinned]}))
    v = JwtVerifier(_settings(jwks_file=str(path), algorithms=["RS256", "PS256"]))
    assert await _reason(v, _sign(rsa_key)) == "algorithm does not match key"


async def test_unknown_kid(verifier: JwtVerifier, rsa_next: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_next, kid="rsa-2")) == "unknown key id"


async def test_missing_kid(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    assert await _reason(verifier, _sign(rsa_key, kid=None)) == "missing key id"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "....",
        "é.é.é",
        "x" * 9000,
        f"{_b64({'alg': 'RS256', 'kid': 'rsa-1'})}",
        "bm90IGpzb24.bm90IGpzb24.c2ln",
    ],
)
async def test_malformed(verifier: JwtVerifier, token: str) -> None:
    assert await _reason(verifier, token) == "malformed"


async def test_an_unsigned_payload_is_never_parsed(verifier: JwtVerifier) -> None:
    """Signature before claims: garbage under a forged header is a bad signature, not parsed."""
    token = f"{_b64({'alg': 'RS256', 'kid': 'rsa-1'})}.bm90IGpzb24.c2ln"
    assert await _reason(verifier, token) == "bad signature"


async def test_claims_that_are_not_an_object(verifier: JwtVerifier, rsa_key: RSAKey) -> None:
    from joserfc import jws

    token = jws.serialize_compact({"alg": "RS256", "kid": "rsa-1"}, b"[1,2]", rsa_key)
    assert await _reason(verifier, token) == "malformed"


async def test_reason_never_echoes_claim_values(verifier: JwtVerifier, rsa_impostor: RSAKey) -> None:
    token = _sign(rsa_impostor, client_id="SENTINEL-client", iss="SENTINEL-iss")
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    assert "SENTINEL" not in repr(info.value)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_settings_refuse_symmetric_and_none(algs: list[str]) -> None:
    with pytest.raises(ValueError, match="algorithms"):
        _settings(jwks_file="x.json", algorithms=algs)


def test_settings_from_the_policy_file_refuse_hs256() -> None:
    raw = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "x", "algorithms": ["HS256"]}
    with pytest.raises(msgspec.ValidationError, match="algorithms"):
        msgspec.convert(raw, JwtSettings)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"jwks_file": "a", "jwks_url": "https://b"}, {"jwks_file": "a", "audience": []}],
)
def test_settings_need_one_key_source_and_an_audience(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"jwks|audience"):
        _settings(**overrides)


def test_a_url_needs_a_client() -> None:
    with pytest.raises(ValueError, match="httpx"):
        JwtVerifier(_settings(jwks_url=JWKS_URL))


def test_missing_or_empty_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(KeySetUnavailable, match="cannot read"):
        JwtVerifier(_settings(jwks_file=str(tmp_path / "absent.json")))
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(KeySetUnavailable, match="no usable signing keys"):
        JwtVerifier(_settings(jwks_file=str(empty)))


# --- JWKS file reload -----------------------------------------------------------------------------


def _replace(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def test_file_is_read_once_and_reloaded_on_request(
    jwks_file: Path, verifier: JwtVerifier, rsa_key: RSAKey, rsa_next: RSAKey
) -> None:
    _replace(jwks_file, _jwks(rsa_next))
    assert await verifier.verify(_sign(rsa_key))  # still the keys read at start-up
    await verifier.reload()
    assert await verifier.verify(_sign(rsa_next, kid="rsa-2"))
    assert await _reason(verifier, _sign(rsa_key)) == "unknown key id"


async def test_a_broken_file_on_reload_keeps_the_old_keys(
    jwks_file: Path, verifier: JwtVerifier, rsa_key: RSAKey
) -> None:
    _replace(jwks_file, b"{not json")
    with pytest.raises(KeySetUnavailable):
        await verifier.reload()
    assert await verifier.verify(_sign(rsa_key))


# --- JWKS URL -------------------------------------------------------------------------------------


class Issuer:
    """A JWKS endpoint behind an httpx transport: it serves whatever key set it holds now."""

    def __init__(self, *keys: Key) -> None:
        self.body = _jwks(*keys)
        self.status = 200
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        return httpx.Response(self.status, content=self.body, headers={"content-type": "application/json"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(rsa_key: RSAKey) -> Issuer:
    return Issuer(rsa_key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler)) as client:
        yield client


@pytest.fixture
def url_verifier(http: httpx.AsyncClient, clock: Callable[[], float]) -> JwtVerifier:
    return JwtVerifier(_settings(jwks_url=JWKS_URL, jwks_cache_s=300, jwks_refetch_min_s=30), http, clock=clock)


async def test_url_keys_are_fetched_once_and_cached(
    url_verifier: JwtVerifier, issuer: Issuer, clock: Clock, rsa_key: RSAKey
) -> None:
    for _ in range(3):
        assert await url_verifier.verify(_sign(rsa_key))
    assert issuer.fetches == 1
    clock.now += 301
    assert await url_verifier.verify(_sign(rsa_key))
    assert issuer.fetches == 2


async def test_rotation_unknown_kid_triggers_one_rate_limited_refetch(
    url_verifier: JwtVerifier, issuer: Issuer, clock: Clock, rsa_key: RSAKey, rsa_next: RSAKey
) -> None:
    assert await url_verifier.verify(_sign(rsa_key))
    issuer.body = _jwks(rsa_next)  # the issuer rotates
    assert (await url_verifier.verify(_sign(rsa_next, kid="rsa-2"))).client_id == "revcycle"
    assert issuer.fetches == 2
    # A made-up kid right after does not hit the issuer again ...
    assert await _reason(url_verifier, _sign(rsa_next, kid="made-up")) == "unknown key id"
    assert issuer.fetches == 2
    # ... until the refetch interval has passed.
    clock.now += 31
    assert await _reason(url_verifier, _sign(rsa_next, kid="made-up-too")) == "unknown key id"
    assert issuer.fetches == 3


async def test_unreachable_issuer_with_no_keys_is_not_an_invalid_token(
    url_verifier: JwtVerifier, issuer: Issuer, clock: Clock, rsa_key: RSAKey
) -> None:
    issuer.status = 503
    for _ in range(4):
        with pytest.raises(KeySetUnavailable):
            await url_verifier.verify(_sign(rsa_key))
    assert issuer.fetches == 2  # the scheduled fetch and one forced refetch, then it waits
    issuer.status = 200
    clock.now += 31
    assert await url_verifier.verify(_sign(rsa_key))


async def test_unreachable_issuer_keeps_the_last_good_keys(
    url_verifier: JwtVerifier, issuer: Issuer, clock: Clock, rsa_key: RSAKey
) -> None:
    assert await url_verifier.verify(_sign(rsa_key))
    issuer.status = 500
    clock.now += 301
    assert await url_verifier.verify(_sign(rsa_key))
    assert await url_verifier.verify(_sign(rsa_key))
    assert issuer.fetches == 2  # the failed fetch is not retried on every request


async def test_reload_refetches_the_url(
    url_verifier: JwtVerifier, issuer: Issuer, rsa_key: RSAKey, rsa_next: RSAKey
) -> None:
    assert await url_verifier.verify(_sign(rsa_key))
    issuer.body = _jwks(rsa_next)
    await url_verifier.reload()
    assert issuer.fetches == 2
    assert await url_verifier.verify(_sign(rsa_next, kid="rsa-2"))


async def test_an_expired_cache_and_an_unknown_kid_cost_one_fetch(
    url_verifier: JwtVerifier, issuer: Issuer, clock: Clock, rsa_key: RSAKey
) -> None:
    assert await url_verifier.verify(_sign(rsa_key))
    clock.now += 301
    assert await _reason(url_verifier, _sign(rsa_key, kid="made-up")) == "unknown key id"
    assert issuer.fetches == 2
