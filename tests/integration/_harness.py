"""Processes the resilience tests kill, stop and restart: the hub and the ERP stub on fixed ports.

``tests.processes.running`` starts a process for the length of a ``with`` block; these tests need
more: SIGKILL at a chosen moment, SIGTERM with the exit timed, a restart on the same port and data
directory. Output goes to a log file (a pipe nobody reads would block a chatty process) whose tail
is attached to any start-up failure. Redis helpers: a unique key prefix per test, its keys deleted
afterwards, and a loud failure (never a skip) when Redis does not answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis

from gateway.worker import READY_LINE
from tests.conftest import KEY, TEST_POLICY
from tests.processes import free_port, hub_argv, stub_argv

__all__ = [
    "FAST_RETRIES",
    "REDIS_URL",
    "Proc",
    "cleanup",
    "clear_faults",
    "erp_count",
    "erp_holding",
    "erp_references",
    "erp_requests",
    "hub_env",
    "poll",
    "redis_prefix",
    "set_faults",
    "wait_completed",
]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
T = TypeVar("T")

# Small retry settings so a test sees many retries, breaker trips and lease expiries in seconds.
FAST_RETRIES = {
    "BILLING_HUB_BACKOFF_BASE_S": "0.05",
    "BILLING_HUB_BACKOFF_CAP_S": "1",
    "BILLING_HUB_BREAKER_COOL_DOWN_S": "1",
    "BILLING_HUB_LEASE_S": "3",
    "BILLING_HUB_CONNECTOR_TIMEOUT_S": "1",
    "BILLING_HUB_STATUS_TIMEOUT_S": "1",
}


def hub_env(erp_url: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """A hub that talks to the ERP only, with the test policy and fast retries."""
    return {
        "BILLING_HUB_DATA_DIR": str(data_dir),
        "BILLING_HUB_POLICY_FILE": str(TEST_POLICY),
        "BILLING_HUB_TARGETS": "erp",
        "BILLING_HUB_ERP_URL": erp_url,
        "BILLING_HUB_LOG_LEVEL": "WARNING",
        **FAST_RETRIES,
        **overrides,
    }


def poll(what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 0.05) -> T:
    """``probe()`` until it returns a truthy value, which is returned; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


class Proc:
    """One server process that can be started, killed, terminated and restarted on the same port."""

    def __init__(
        self, name: str, argv: list[str], port: int, ready_path: str, log_dir: Path, env: Mapping[str, str]
    ) -> None:
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.env = dict(env)
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def hub(cls, name: str, log_dir: Path, env: Mapping[str, str], port: int | None = None) -> Proc:
        port = port or free_port()
        return cls(name, hub_argv(port), port, "/health", log_dir, env)

    @classmethod
    def dispatcher(cls, name: str, log_dir: Path, env: Mapping[str, str]) -> Proc:
        """``billing-hub dispatch``: no port; ready when it prints its ready line."""
        argv = [sys.executable, "-m", "gateway.cli", "dispatch"]
        return cls(name, argv, 0, "", log_dir, env)

    @classmethod
    def erp(cls, log_dir: Path, port: int | None = None) -> Proc:
        port = port or free_port()
        return cls("stub-erp", stub_argv("erp", port), port, "/erp/health", log_dir, {})

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 30.0) -> Proc:
        """Launch and wait until it answers its ready path."""
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> Proc:
        """Launch without waiting (start several at once, then ``wait_ready`` each)."""
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> Proc:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode} on start:\n{self.log_tail()}")
            if not self.ready_path:  # no port: the ready line in its output
                if READY_LINE in self.log_tail(chars=100_000).rsplit("--- start", 1)[-1]:
                    return self
                time.sleep(0.05)
                continue
            try:
                if httpx.get(self.url + self.ready_path, timeout=0.5).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"{self.name} did not answer {self.ready_path} within {timeout_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> float:
        """SIGTERM; returns the seconds until the process had exited (fails past ``timeout_s``)."""
        assert self.process is not None
        assert self.alive()
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not exit within {timeout_s} s of SIGTERM:\n{self.log_tail()}")
        return time.monotonic() - started

    def stop(self) -> None:
        """Clean-up: SIGTERM, then SIGKILL if it lingers."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def client(self, key: str = KEY, timeout_s: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=timeout_s)


@contextmanager
def cleanup(*procs: Proc) -> Iterator[None]:
    """Stop every process on the way out, whatever happened."""
    try:
        yield
    finally:
        for proc in procs:
            proc.stop()


def set_faults(erp: Proc, **faults: Any) -> None:
    httpx.put(f"{erp.url}/_control/faults", json=faults, timeout=5).raise_for_status()


def clear_faults(erp: Proc) -> None:
    httpx.delete(f"{erp.url}/_control/faults", timeout=5).raise_for_status()


def erp_references(erp: Proc) -> list[str]:
    """The external_reference of every journal the ERP stub has posted (one per posted journal)."""
    response = httpx.get(f"{erp.url}/erp/journals", timeout=30)
    response.raise_for_status()
    return [item["external_reference"] for item in response.json()["items"]]


def erp_holding(erp: Proc, count: int) -> Callable[[], list[str] | None]:
    """A probe for ``poll``: the ERP's references once it holds at least ``count`` journals."""

    def probe() -> list[str] | None:
        references = erp_references(erp)
        return references if len(references) >= count else None

    return probe


def erp_count(erp: Proc) -> int:
    return len(erp_references(erp))


def wait_completed(api: httpx.Client, ids: list[str], timeout_s: float = 30) -> list[dict[str, Any]]:
    """The transactions, once every one is completed (the ERP holding a journal comes a moment before
    the hub has recorded the answer); fails with the states seen when they are not all completed."""
    seen: Counter[str] = Counter()

    def all_completed() -> list[dict[str, Any]] | None:
        transactions = [api.get(f"/v1/transactions/{txn}").json() for txn in ids]
        seen.clear()
        seen.update(t["state"] for t in transactions)
        return transactions if seen == Counter({"completed": len(ids)}) else None

    deadline = time.monotonic() + timeout_s
    while (transactions := all_completed()) is None:
        if time.monotonic() >= deadline:
            pytest.fail(f"not every transaction completed within {timeout_s} s: {dict(seen)}")
        time.sleep(0.1)
    return transactions


def erp_requests(erp: Proc) -> list[dict[str, Any]]:
    """The stub's request journal (the last 1000 non-control requests)."""
    response = httpx.get(f"{erp.url}/_control/requests", timeout=10)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A fresh ``BILLING_HUB_REDIS_PREFIX``; every key under it is deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(
            f"Redis at {REDIS_URL} did not answer ({type(exc).__name__}). These tests need a real Redis "
            "server: start redis-server or point REDIS_URL at one. They are never skipped."
        )
    prefix = f"test-resilience-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
