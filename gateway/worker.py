"""``billing-hub dispatch``: a process that delivers and serves nothing.

Why: delivering a journal costs the serving process about as much CPU as accepting five (the HTTP
hop to the target dominates; ``make bench``), so an API node that also delivers accepts far fewer
requests. With ``BILLING_HUB_DISPATCHER_ENABLED=false`` on the API nodes, one or more of these
processes deliver what the API nodes store. They share the store (SQLite file or Redis); leases and
fencing tokens already keep two dispatchers off the same entry, and the audit chain is appended under
the store's write lock (SQLite) or WATCH/MULTI (Redis), so the chain does not fork either.

SIGTERM or SIGINT: stop claiming, give in-flight deliveries the shutdown grace, hand back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import msgspec

from gateway.runtime import open_runtime, settle_heap
from gateway.settings import Settings
from gateway.telemetry import Telemetry, setup_telemetry

__all__ = ["READY_LINE", "dispatch_until_stopped"]

READY_LINE = "dispatcher ready:"
log = logging.getLogger("billing_hub.dispatch")


def _operations(settings: Settings, telemetry: Telemetry) -> frozenset[str]:
    # The policy file is validated against the API's operations, exactly as the serving process does.
    # The app is only built to list them, on this process's telemetry (not a second set of providers).
    from gateway.app import create_app, v1_operations

    return v1_operations(create_app(settings, telemetry=telemetry))


async def dispatch_until_stopped(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Deliver until ``stop`` is set (or SIGTERM/SIGINT when it is None), then shut down gracefully."""
    stop = stop or _stop_on_signals()
    telemetry = setup_telemetry(settings.trace_exporter)
    runtime = await open_runtime(
        msgspec.structs.replace(settings, dispatcher_enabled=True), _operations(settings, telemetry), telemetry
    )
    settle_heap()
    # The line a supervisor (or a test) waits for: from here on, stored work gets delivered.
    print(f"{READY_LINE} {', '.join(runtime.hub.connectors)} from the {settings.state_backend} store", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.close()
        telemetry.shutdown()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    # A HUP meant for the serving processes (reload the policy) must not kill a worker mid-delivery:
    # its default action ends the process without handing its leases back.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP: a dispatch worker has no policy to reload"))
    return stop
