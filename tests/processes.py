"""Real processes on free loopback ports for integration tests: stubs and the hub."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

STUB_MODULES = {
    "ehr": "connectors.ehr._stub",
    "erp": "connectors.erp._stub",
    "clearinghouse": "connectors.clearinghouse._stub",
}


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends on ``sock`` until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]


def _wait_ready(service: Service, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            out = service.process.stdout.read().decode(errors="replace") if service.process.stdout else ""
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{out[-3000:]}")
        try:
            if httpx.get(service.url + path, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} did not answer {path} within {timeout_s} s")


def stop(service: Service, timeout_s: float = 10.0) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(5)


@contextmanager
def running(
    name: str,
    argv: list[str],
    port: int,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 20.0,
) -> Iterator[Service]:
    process = subprocess.Popen(
        argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    service = Service(name=name, url=f"http://127.0.0.1:{port}", process=process)
    try:
        _wait_ready(service, ready_path, timeout_s)
        yield service
    finally:
        stop(service)


def stub_argv(kind: str, port: int) -> list[str]:
    code = (
        "from connectors._stubkit import run_stub; "
        f"from {STUB_MODULES[kind]} import create_app; "
        f"run_stub(create_app(), '127.0.0.1', {port})"
    )
    return [sys.executable, "-c", code]


def hub_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
