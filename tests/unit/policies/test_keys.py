"""API keys: fresh keys are recognisable and unguessable; the ring holds and matches only hashes."""

from __future__ import annotations

import hashlib
import re

import pytest

from policies.keys import KEY_PREFIX, KeyRing, hash_api_key, new_api_key


def test_new_key_has_prefix_entropy_and_matching_hash() -> None:
    key, digest = new_api_key()
    assert key.startswith(KEY_PREFIX)
    assert re.fullmatch(r"bh_[A-Za-z0-9_-]{43}", key)
    assert digest == hashlib.sha256(key.encode()).hexdigest() == hash_api_key(key)


def test_new_keys_differ() -> None:
    keys = {new_api_key()[0] for _ in range(200)}
    assert len(keys) == 200


def test_ring_matches_the_right_client_among_many() -> None:
    issued = {f"client-{i}": new_api_key() for i in range(20)}
    ring = KeyRing({digest: client for client, (_, digest) in issued.items()})
    assert len(ring) == 20
    for client, (key, _) in issued.items():
        assert ring.match(key) == client


def test_ring_rejects_unknown_empty_and_near_miss_keys() -> None:
    key, digest = new_api_key()
    ring = KeyRing({digest: "c1"})
    assert ring.match(new_api_key()[0]) is None
    assert ring.match("") is None
    assert ring.match(key[:-1]) is None
    assert ring.match(key + "x") is None
    assert ring.match(digest) is None  # presenting the stored hash itself must not work


def test_ring_accepts_upper_case_hex_from_the_policy_file() -> None:
    key, digest = new_api_key()
    assert KeyRing({digest.upper(): "c1"}).match(key) == "c1"


def test_ring_holds_no_keys() -> None:
    key, digest = new_api_key()
    ring = KeyRing({digest: "c1"})
    held = repr([(d.decode(), c) for d, c in ring._entries])
    assert key not in held
    assert digest in held


def test_an_empty_ring_matches_nothing() -> None:
    assert KeyRing({}).match(new_api_key()[0]) is None


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "a" * 63, "bh_" + "a" * 61])
def test_ring_refuses_values_that_are_not_sha256_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="client 'c1'") as info:
        KeyRing({bad: "c1"})
    if bad:
        assert bad not in str(info.value)


def test_match_compares_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the number of digest comparisons equals the ring size, wherever the match is."""
    import hmac

    calls: list[int] = []
    real = hmac.compare_digest

    class CountingHmac:
        @staticmethod
        def compare_digest(a: bytes, b: bytes) -> bool:
            calls.append(1)
            return bool(real(a, b))

    issued = [new_api_key() for _ in range(10)]
    ring = KeyRing({digest: f"c{i}" for i, (_, digest) in enumerate(issued)})
    monkeypatch.setattr("policies.keys.hmac", CountingHmac)
    for key in (issued[0][0], issued[9][0], "unknown"):
        calls.clear()
        ring.match(key)
        assert len(calls) == 10
