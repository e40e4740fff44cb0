"""Fixtures shared by the integration tests that run a hub over each state backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration._harness import REDIS_URL, redis_prefix


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The hub settings of one backend: none for the embedded store; Redis under a fresh key prefix."""
    if request.param == "embedded":
        yield {}
        return
    with redis_prefix() as prefix:
        yield {
            "BILLING_HUB_STATE_BACKEND": "redis",
            "BILLING_HUB_REDIS_URL": REDIS_URL,
            "BILLING_HUB_REDIS_PREFIX": prefix,
        }
