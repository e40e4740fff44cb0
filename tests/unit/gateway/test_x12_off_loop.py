"""A large 835 takes seconds to read: it is read off the event loop, so the hub's other requests
are not held behind it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from connectors.clearinghouse import x12
from gateway.api import _remit_x12
from gateway.app import create_app
from gateway.ids import new_id_off_loop
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_an_835_is_read_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def reading(body: bytes) -> Any:
        seen.append(_on_a_loop())
        return x12.read_835(body)

    monkeypatch.setattr(_remit_x12, "read_835", reading)
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        fresh = factories.unique_835((FIXTURES / "835_full.x12").read_bytes())
        answer = client.post("/v1/remittances", content=fresh, headers={"content-type": "application/edi-x12"})
    assert answer.status_code == 201, answer.text
    assert seen == [False]  # read once, and not on the loop that serves the other requests


def test_ids_made_off_the_loop_have_the_same_form_and_do_not_repeat() -> None:
    ids = {new_id_off_loop("rmt") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 30 and i.startswith("rmt_") for i in ids)
