"""Operator mistakes at the command line get one line and an exit code, not a traceback or a 0."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib

import pytest

CLI = [sys.executable, "-m", "gateway.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("client", ["bad name]", "", "a.b", "x" * 65])
def test_keys_new_refuses_a_client_id_that_would_break_the_policy_file(client: str) -> None:
    done = _run("keys", "new", "--client", client)
    assert (done.returncode, done.stdout) == (2, ""), done.stdout + done.stderr
    assert "--client must be" in done.stderr


def test_keys_new_prints_a_snippet_that_is_toml() -> None:
    done = _run("keys", "new", "--client", "billing-office_2")
    assert done.returncode == 0, done.stderr
    snippet = done.stdout.split("\n\n", 1)[1]
    assert list(tomllib.loads(snippet)["clients"]) == ["billing-office_2"]


def test_openapi_to_a_place_it_cannot_write_is_one_line() -> None:
    done = _run("openapi", "--out", "/proc/no-such/v1.json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("billing-hub: cannot write /proc/no-such/v1.json")
    assert "Traceback" not in done.stderr


def test_stubs_exit_non_zero_when_one_cannot_start() -> None:
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8083))  # the ERP stub's port
            taken.listen()
        except OSError:
            pass  # already taken by something else: the stub cannot start either way
        done = _run("stubs", "--only", "erp")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stub-erp exited with an error" in done.stderr
