"""An API node that only accepts, and a ``billing-hub dispatch`` process that delivers what it stores.

Over both backends: the embedded SQLite file shared by the two processes, and Redis. Every journal
reaches the ERP exactly once, ``Prefer: wait`` still answers with the final state (the API node polls
the store, having no dispatcher of its own to hear from), both processes' audit records form one
intact chain, and SIGTERM stops the dispatcher cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests import factories
from tests.integration._harness import Proc, cleanup, erp_references, hub_env, wait_completed

pytestmark = pytest.mark.integration


def _verify_audit(env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "gateway.cli", "audit", "verify"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_separate_dispatcher_delivers_what_the_api_node_accepts(tmp_path: Path, backend: dict[str, str]) -> None:
    erp = Proc.erp(tmp_path)
    env = hub_env(erp.url, tmp_path / "data", **backend)
    api_node = Proc.hub("hub-api", tmp_path, {**env, "BILLING_HUB_DISPATCHER_ENABLED": "false"})
    dispatcher = Proc.dispatcher("dispatcher", tmp_path, env)
    with cleanup(api_node, dispatcher, erp), ExitStack():
        erp.start()
        api_node.start()
        api = api_node.client()

        # No dispatcher anywhere yet: the work is accepted and waits; Prefer: wait gives up with a 202.
        early = api.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=1"})
        assert early.status_code == 202, early.text
        assert early.json()["state"] == "accepted"
        assert erp_references(erp) == []

        dispatcher.start()
        started = time.monotonic()
        waited = api.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
        assert waited.status_code == 200, waited.text  # the final state, seen by polling the store
        assert waited.json()["state"] == "completed"
        assert time.monotonic() - started < 5

        accepted = [api.post("/v1/journals", json=factories.journal()) for _ in range(20)]
        assert {r.status_code for r in accepted} == {202}
        ids = [early.json()["id"], waited.json()["id"], *(r.json()["id"] for r in accepted)]
        done = wait_completed(api, ids, timeout_s=30)
        assert {t["state"] for t in done} == {"completed"}

        references = erp_references(erp)
        assert len(references) == 22
        assert Counter(references).most_common(1)[0][1] == 1  # each journal posted once

        # A HUP sent to every billing-hub process (the servers reload their policy on it) must not
        # kill the worker, whose default action for it ended the process mid-delivery.
        assert dispatcher.process is not None
        dispatcher.process.send_signal(signal.SIGHUP)
        late = api.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
        assert (late.status_code, late.json()["state"]) == (200, "completed"), late.text
        assert dispatcher.process.poll() is None

        assert dispatcher.terminate(timeout_s=20) < 15
        assert dispatcher.process is not None
        assert dispatcher.process.returncode == 0
        api_node.stop()

        # Calls (API node) and deliveries (dispatcher) were appended to one chain by two processes.
        verified = _verify_audit({**os.environ, **env})
        checked = int(verified.split(":")[1].split()[0])
        assert checked >= 22 + 22, verified  # at least one call record and one delivery record each
