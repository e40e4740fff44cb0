"""A policy file is compiled or refused as a whole, with the bad key named."""

import json
import logging
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from policies.config import (
    MAX_BODY_CEILING,
    MAX_IDEMPOTENCY_TTL_S,
    MAX_JSON_DEPTH_CEILING,
    PolicyError,
    load_policy,
)
from policies.engine import PolicyHolder

FIXTURE = Path(__file__).parents[2] / "fixtures" / "policy.toml"


def test_an_impossible_rate_limit_is_a_policy_error_naming_it(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        FIXTURE.read_text().replace("[rate_limits.tight]\nlimit = 3", "[rate_limits.tight]\nlimit = 3000000000000")
    )
    assert "3000000000000" in policy.read_text()
    with pytest.raises(PolicyError, match=r"rate_limits\.tight"):
        PolicyHolder(policy, frozenset())


def test_a_missing_operation_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="noSuchOperation"):
        PolicyHolder(FIXTURE, frozenset({"noSuchOperation"}))


def test_reload_keeps_the_old_policy_when_the_new_file_is_invalid(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FIXTURE.read_text())
    holder = PolicyHolder(policy, frozenset({"postJournal"}))
    before = holder.current
    policy.write_text(FIXTURE.read_text().replace('scope = "journals:write"', 'scope = "journals:scribble"'))
    error = holder.reload()
    assert error is not None
    assert "scope" in error
    assert holder.current is before


def test_a_file_that_is_not_utf8_is_a_policy_error_and_a_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FIXTURE.read_text())
    holder = PolicyHolder(policy, frozenset({"postJournal"}))
    before = holder.current
    policy.write_bytes(b"\x00\xff")
    error = holder.reload()
    assert error is not None
    assert "not valid UTF-8" in error
    assert "byte 1" in error
    assert holder.current is before
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        PolicyHolder(policy, frozenset())


def _fixture_with(tmp_path: Path, old: str, new: str) -> Path:
    """The test policy with ``old`` (which must be in it) replaced by ``new``, as a file of its own."""
    fixture = FIXTURE.read_text()
    assert old in fixture
    policy = tmp_path / "policy.toml"
    policy.write_text(fixture.replace(old, new))
    return policy


def _with_jwt(tmp_path: Path, jwks_file: str) -> Path:
    section = f'[jwt]\nissuer = "https://idp.test/"\naudience = "billing-hub"\njwks_file = "{jwks_file}"\n\n'
    policy = tmp_path / "policy.toml"
    policy.write_text(FIXTURE.read_text().replace("[rate_limits.reads]", section + "[rate_limits.reads]"))
    return policy


def _write_key_set(path: Path) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))


@pytest.mark.parametrize("content", [None, "not json", '{"keys": []}'])
def test_an_unusable_jwks_file_is_a_policy_error(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "jwks.json").write_text(content)
    with pytest.raises(PolicyError, match=r"jwt\.jwks_file"):
        PolicyHolder(_with_jwt(tmp_path, str(tmp_path / "jwks.json")), frozenset())


def test_reload_onto_an_unusable_jwks_file_keeps_the_old_policy(tmp_path: Path) -> None:
    _write_key_set(tmp_path / "jwks.json")
    policy = _with_jwt(tmp_path, str(tmp_path / "jwks.json"))
    holder = PolicyHolder(policy, frozenset())
    before = holder.current
    (tmp_path / "jwks.json").unlink()
    error = holder.reload()
    assert error is not None
    assert "jwt.jwks_file" in error
    assert holder.current is before


def test_a_relative_jwks_file_is_read_beside_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    _write_key_set(folder / "jwks.json")
    policy = _with_jwt(folder, "jwks.json")
    monkeypatch.chdir(tmp_path)  # not the policy's folder
    holder = PolicyHolder(policy, frozenset())
    assert holder.current.file.jwt is not None
    assert holder.current.file.jwt.jwks_file == str(folder / "jwks.json")


_CONTENT_TYPES = 'content_types = ["application/json"]'


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # content types written so that no request could ever match them
        (_CONTENT_TYPES, 'content_types = ["Application/JSON"]', r"limits\.content_types\[0\]"),
        (_CONTENT_TYPES, 'content_types = ["application/json; charset=utf-8"]', r"limits\.content_types\[0\]"),
        (_CONTENT_TYPES, 'content_types = ["json"]', r"limits\.content_types\[0\]"),
        # a body limit above what the server reads at all
        (
            "max_body_bytes = 10485760",
            f"max_body_bytes = {MAX_BODY_CEILING + 1}",
            r"routes\.postRemittance\.max_body_bytes",
        ),
        # a depth past what the JSON parsers themselves can read
        ("max_json_depth = 16", f"max_json_depth = {MAX_JSON_DEPTH_CEILING + 1}", r"limits\.max_json_depth"),
        # an idempotency record kept for ever, or past what a store can express as an expiry
        ("ttl_s = 3600", "ttl_s = inf", r"idempotency\.ttl_s"),
        ("ttl_s = 3600", "ttl_s = 1e16", r"idempotency\.ttl_s"),
        ("ttl_s = 3600", f"ttl_s = {MAX_IDEMPOTENCY_TTL_S + 1}", r"idempotency\.ttl_s"),
        # a body timeout outside (0, 600] s
        ("body_timeout_s = 3 ", "body_timeout_s = 0 ", r"limits\.body_timeout_s"),
        ("body_timeout_s = 3 ", "body_timeout_s = -1 ", r"limits\.body_timeout_s"),
        ("body_timeout_s = 3 ", "body_timeout_s = 601 ", r"limits\.body_timeout_s"),
        # a rate-limit window past the limiter's arithmetic (it overflowed: a traceback, a 500 on reload)
        ("window_s = 60", "window_s = inf", r"rate_limits\.\w+\.window_s"),
        ("window_s = 60", "window_s = 1e300", r"rate_limits\.\w+\.window_s"),
    ],
)
def test_a_limit_the_server_could_never_honour_is_refused_naming_its_key(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    with pytest.raises(PolicyError, match=named):
        PolicyHolder(_fixture_with(tmp_path, old, new), frozenset())


def test_required_idempotency_where_no_key_is_taken_is_refused(tmp_path: Path) -> None:
    """putAccount is a PUT: the hub reads no Idempotency-Key there, so "required" would never be enforced."""
    route = '[routes.putAccount]\nscope = "accounts:write"\nrate_limit = "writes"\n'
    policy = _fixture_with(tmp_path, route, route + 'idempotency = "required"\n')
    operations = frozenset({"putAccount", "postJournal"})
    with pytest.raises(PolicyError, match=r"routes\.putAccount"):
        PolicyHolder(policy, operations, keyed=frozenset({"postJournal"}))
    assert PolicyHolder(policy, operations, keyed=frozenset({"postJournal", "putAccount"})).current


def test_an_idempotency_ttl_no_longer_than_the_longest_wait_is_refused(tmp_path: Path) -> None:
    """The in-flight claim of a key lasts at most its TTL: with a TTL of 20 s and Prefer: wait up to
    30 s, a retry 25 s into the wait would have stored the work a second time."""
    policy = _fixture_with(tmp_path, "ttl_s = 3600", "ttl_s = 20")
    with pytest.raises(PolicyError, match=r"idempotency\.ttl_s \(20 s\).*30 s"):
        PolicyHolder(policy, frozenset(), longest_wait_s=30)
    assert PolicyHolder(policy, frozenset(), longest_wait_s=10).current  # long enough there

    policy.write_text(FIXTURE.read_text())
    holder = PolicyHolder(policy, frozenset(), longest_wait_s=30)
    before = holder.current
    policy.write_text(FIXTURE.read_text().replace("ttl_s = 3600", "ttl_s = 30"))  # equal is too short too
    error = holder.reload()
    assert error is not None
    assert "idempotency.ttl_s (30 s)" in error
    assert holder.current is before


def test_a_route_entry_naming_no_operation_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo beside the real entry ([routes.postJournals]) would otherwise sit in the file unread."""
    typo = '[routes.putAccounts]\nscope = "admin"\nrate_limit = "writes"\n\n'
    policy = _fixture_with(tmp_path, "[routes.putAccount]", typo + "[routes.putAccount]")
    with caplog.at_level(logging.WARNING, logger="billing_hub.policies"):
        PolicyHolder(policy, frozenset(load_policy(FIXTURE).routes), keyed=frozenset())
    assert "[routes.putAccounts] names no operation of this hub" in caplog.text
