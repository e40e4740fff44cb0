"""X12 interchange control numbers come from the hub's store: never repeated by a restart or by a
second hub process, which a counter in memory (seeded from the clock) did."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from litestar.testing import TestClient

from connectors.clearinghouse import SequenceNumbers, X12ClearinghouseConnector
from gateway.app import create_app
from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import HUB_DATABASE, SqliteStore
from tests import factories
from tests.conftest import KEY, TEST_POLICY

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp,clearinghouse"
    )


async def test_two_hubs_on_one_store_never_send_the_same_interchange_number(tmp_path: Path) -> None:
    hubs = [Hub.open(_settings(tmp_path), SqliteStore(tmp_path / HUB_DATABASE, durability="normal")) for _ in range(2)]
    try:
        connectors = []
        for hub in hubs:
            connector = hub.connectors["clearinghouse"]
            assert isinstance(connector, X12ClearinghouseConnector)
            assert isinstance(connector.numbers, SequenceNumbers)  # the store's, not the clock's
            connectors.append(connector)
        drawn = [(await c.numbers.next()).interchange for _ in range(5) for c in connectors]
        assert drawn == list(range(drawn[0], drawn[0] + 10))
        await hubs[0].reply_numbers().next()  # the hub's own 999s: a sequence of their own
        assert (await connectors[1].numbers.next()).interchange == drawn[-1] + 1
    finally:
        for hub in hubs:
            await hub.close()


def _isa13(x12: str) -> int:
    return int(x12[:106].split(x12[3])[13])


def test_the_999_replies_go_on_numbering_after_a_restart(tmp_path: Path) -> None:
    raw = (FIXTURES / "835_full.x12").read_bytes()
    numbers = []
    for _ in range(2):  # the second app is the hub after a restart, on the same data directory
        with TestClient(create_app(_settings(tmp_path)), base_url="http://127.0.0.1") as client:
            client.headers["X-API-Key"] = KEY
            for _ in range(2):
                fresh = factories.unique_835(raw)  # a new payment each time: the hub takes each once
                answer = client.post("/v1/remittances", content=fresh, headers={"content-type": "application/edi-x12"})
                assert answer.status_code == 201, answer.text
                numbers.append(_isa13(client.get(answer.json()["acknowledgement_href"]).text))
        with sqlite3.connect(tmp_path / HUB_DATABASE) as db:  # kept in the store, not in the process
            (stored,) = db.execute("select value from counters where name = 'sequence:x12-interchange:replies'")
        assert stored == (numbers[-1],)
    assert numbers == list(range(numbers[0], numbers[0] + 4))
