"""A policy file is compiled or refused as a whole, with the bad key named."""

from pathlib import Path

import pytest

from policies.config import PolicyError
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
