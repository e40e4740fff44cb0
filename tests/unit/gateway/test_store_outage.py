"""Redis answering at start-up and gone later: the hub's own store failing is a 503 with
Retry-After, never a 500. The outage is real: a TCP relay in front of the real Redis server is cut."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY
from tests.processes import Service

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Relay:
    """Forwards loopback connections to Redis until ``cut``: then every connection is closed and
    new ones are refused, as when the server or the network goes away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.open = True
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            if not self.open:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def restore(self) -> None:
        """Listen again, on the same port: the server is back."""
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.open = False
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    parts = urlsplit(REDIS_URL)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield relay
    relay.cut()


def _through(relay: Relay, tmp_path: Path, redis_prefix: str, **more: Any) -> Settings:
    """A hub's settings with its Redis store reached through ``relay``."""
    database = urlsplit(REDIS_URL).path or "/0"
    given: dict[str, Any] = {"dispatcher_enabled": False, **more}
    return Settings(
        data_dir=str(tmp_path), policy_file=str(TEST_POLICY), targets="erp", state_backend="redis",
        redis_url=f"redis://127.0.0.1:{relay.port}{database}", redis_prefix=redis_prefix, **given,
    )  # fmt: skip


def test_reads_answer_503_while_the_store_is_gone(relay: Relay, tmp_path: Path, redis_prefix: str) -> None:
    settings = _through(relay, tmp_path, redis_prefix)
    client: TestClient[Any]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        assert client.get("/v1/admin/audit").status_code == 200
        relay.cut()
        for path in ("/v1/admin/audit", "/v1/transactions/txn_00000000000000000000000000"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["type"].endswith("upstream-unavailable")


def test_the_outage_is_logged_with_the_route_not_the_path(
    relay: Relay, tmp_path: Path, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A concrete path holds an account number or a claim id (a patient control number), and a
    client may put a member id there: the log names the route, as spans and metrics do."""
    settings = _through(relay, tmp_path, redis_prefix)
    client: TestClient[Any]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        relay.cut()
        with caplog.at_level(logging.WARNING, logger="billing_hub"):
            assert client.get("/v1/claims/PCNSENTINEL77/status").status_code == 503
    logged = [r.getMessage() for r in caplog.records if r.name == "billing_hub.problems"]
    assert logged, caplog.text
    assert "PCNSENTINEL77" not in caplog.text
    assert any("/v1/claims/{claim_id}/status" in line for line in logged), logged


def test_the_dispatcher_outlives_an_outage_of_its_store(
    relay: Relay, tmp_path: Path, redis_prefix: str, stubs: dict[str, Service]
) -> None:
    """Every store call of the dispatcher's loop may fail while Redis is gone, the one that decides
    how long to sleep included: that one used to end the loop, so nothing was delivered after."""
    settings = _through(relay, tmp_path, redis_prefix, dispatcher_enabled=True, erp_url=stubs["erp"].url)
    client: TestClient[Any]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        relay.cut()
        time.sleep(2.5)  # a failed pass, its second of back-off, then the look for what is due
        relay.restore()
        done = client.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
        assert (done.status_code, done.json()["state"]) == (200, "completed"), done.text


def test_a_write_whose_wait_loses_the_store_answers_the_202_it_stored(
    relay: Relay, tmp_path: Path, redis_prefix: str
) -> None:
    """``Prefer: wait`` stores the work first, then reads the transaction until it is done. When the
    store goes away during that wait, the work is stored all the same: the answer is its 202 with
    ``Location``, not a 503 that tells the client to send it again (which would store it twice)."""
    settings = _through(relay, tmp_path, redis_prefix)
    client: TestClient[Any]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        cut = threading.Timer(1.0, relay.cut)  # no dispatcher: the wait reads the store until its end
        cut.start()
        try:
            answer = client.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=4"})
        finally:
            cut.join()
        assert answer.status_code == 202, answer.text
        href = answer.headers["location"]
        assert answer.json()["state"] == "accepted"
        relay.restore()
        stored = client.get(href)
        assert stored.status_code == 200, stored.text
        assert stored.json()["id"] == answer.json()["id"]


def test_a_keyed_write_whose_wait_loses_the_store_answers_its_202_and_replays_it_later(
    relay: Relay, tmp_path: Path, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With an ``Idempotency-Key`` the work went in with a provisional record holding the 202. When the
    store is gone by the time the answer is sent, that record cannot be finished: the answer is still
    the 202 (not an exception after it), and once the record's in-flight lease has run out a retry
    replays that 202 instead of storing the work again."""
    settings = _through(relay, tmp_path, redis_prefix, max_wait_s=4, idempotency_lease_s=5)
    body, headers = factories.journal(), {"Prefer": "wait=4", "Idempotency-Key": "lost-store-1"}
    client: TestClient[Any]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        cut = threading.Timer(1.0, relay.cut)
        cut.start()
        try:
            answer = client.post("/v1/journals", json=body, headers=headers)
            started = time.monotonic()
        finally:
            cut.join()
        assert answer.status_code == 202, answer.text
        assert answer.headers["location"] == f"/v1/transactions/{answer.json()['id']}"
        assert any("idempotency record" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        relay.restore()
        time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))  # the provisional record's lease runs out
        again = client.post("/v1/journals", json=body, headers=headers)
        assert again.status_code == 202, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == answer.json()["id"]
