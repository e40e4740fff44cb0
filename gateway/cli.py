"""``billing-hub``: serve the hub, run the stub servers, write the OpenAPI documents."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import math
import multiprocessing
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports the app lazily, so that `keys` and `audit` start fast
    from litestar import Litestar

    from gateway.settings import Settings

__all__ = ["main"]

STUBS = {
    "ehr": ("connectors.ehr._stub", 8081),
    "clearinghouse": ("connectors.clearinghouse._stub", 8082),
    "erp": ("connectors.erp._stub", 8083),
}


def _uvicorn_options(*, problems: bool = True) -> dict[str, Any]:
    """uvloop + httptools where installed: measured ahead of the pure-Python loop and h11 parser.
    ``problems``: the parser answers a request it cannot parse with the hub's problem
    (``gateway.http_framing``); the stubs keep uvicorn's own answer, not being the hub."""
    from gateway.http_framing import ProblemH11Protocol, ProblemHttpToolsProtocol

    httptools = importlib.util.find_spec("httptools") is not None
    parser: Any = "httptools" if httptools else "h11"
    if problems:
        parser = ProblemHttpToolsProtocol if httptools else ProblemH11Protocol
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": parser,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
    }


def configure_logging(level: str) -> None:
    """Our own loggers at ``level``, everything else (httpx logs full URLs) at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("billing_hub").setLevel(level.upper())


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.runtime import settle_heap
    from gateway.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    _check_demo_policy(settings, host)
    app = create_app(settings)
    _check_configuration(settings, app)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            settle_heap()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            hub = getattr(app.state, "hub", None)
            if hub is not None:  # requests held by Prefer: wait answer 202 now, not 500 at the timeout
                hub.drain()

    # SIGTERM: uvicorn stops accepting and gives open requests the grace, then the lifespan shutdown
    # gives in-flight deliveries the same grace: the exit is bounded by about twice the setting.
    config = uvicorn.Config(
        app, host=host, port=port, timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s), **_uvicorn_options()
    )
    server = Server(config)
    server.run()
    return 0 if server.started else 3


def _check_demo_policy(settings: Settings, host: str) -> None:
    """The packaged policy's demo key is printed in the README and holds every scope, admin included:
    fine on loopback for a demo, never on an address other machines reach."""
    if settings.policy_file:
        return
    from gateway.settings import SettingsError

    if not _is_loopback(host):
        raise SettingsError(
            f"BILLING_HUB_POLICY_FILE must be set to serve on {host}: the packaged default policy's demo key "
            "is published in the README and has every scope, admin included"
        )
    logging.getLogger("billing_hub").warning(
        "serving with the packaged default policy: its published demo key has every scope (loopback only)"
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _check_data_dir(settings: Settings) -> None:
    """A data directory that cannot be made or written to: one line, before anything opens a file in
    it (the lifespan's traceback, or the worker's, said the same thing in fifty lines)."""
    import os

    from gateway.settings import SettingsError

    if settings.state_backend != "embedded":  # only the embedded store keeps files there
        return
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"BILLING_HUB_DATA_DIR ({path}) cannot be used: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SettingsError(f"BILLING_HUB_DATA_DIR ({path}) cannot be used: not writable")


def _check_configuration(settings: Settings, app: Litestar | None = None) -> None:
    """Refuse what the start-up would refuse, before the server (``app``) or worker starts: one line
    naming the bad setting or policy key (``main``), not a traceback from inside the ASGI lifespan.
    Start-up then builds the same again (a few milliseconds, once)."""
    import asyncio

    from gateway.app import keyed_operations, v1_operations
    from gateway.governance_state import jwks_client, policy_path
    from gateway.targets import build_connectors
    from policies.engine import PolicyHolder

    _check_data_dir(settings)
    if app is not None:  # the policy must cover the app's operations
        http = jwks_client()  # the policy only keeps it; keys are fetched on the first token
        PolicyHolder(
            policy_path(settings),
            v1_operations(app),
            http=http,
            keyed=keyed_operations(app),
            longest_wait_s=settings.max_wait_s,
        )
        asyncio.run(http.aclose())
    for connector in build_connectors(settings).values():  # unused: closing only releases its client
        asyncio.run(connector.aclose())


def dispatch(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.settings import load_settings
    from gateway.worker import dispatch_until_stopped

    settings = load_settings()
    configure_logging(settings.log_level)
    _check_configuration(settings)
    if _uvicorn_options()["loop"] == "uvloop":  # the same event loop as the serving processes
        import uvloop

        uvloop.run(dispatch_until_stopped(settings))
    else:
        asyncio.run(dispatch_until_stopped(settings))
    return 0


def _run_stub(module: str, host: str, port: int) -> None:
    import uvicorn

    app = importlib.import_module(module).create_app()
    uvicorn.run(app, host=host, port=port, **_uvicorn_options(problems=False))


def stubs(args: argparse.Namespace) -> int:
    """Each stub is its own process, as the real systems would be."""
    wanted = args.only or list(STUBS)
    processes = []
    for name in wanted:
        module, port = STUBS[name]
        process = multiprocessing.Process(target=_run_stub, args=(module, args.host, port), name=f"stub-{name}")
        process.start()
        processes.append(process)
        print(f"stub {name:<14} http://{args.host}:{port}", flush=True)

    def stop(*_: object) -> None:
        for process in processes:
            process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()
    # A stub that could not start (its port taken) exits at once: say so in the exit code, not only
    # in its traceback. Stopped by a signal (negative exit codes) is how stubs end normally.
    failed = [p.name for p in processes if p.exitcode is not None and p.exitcode > 0]
    if failed:
        print(f"billing-hub: {', '.join(failed)} exited with an error", file=sys.stderr)
        return 1
    return 0


def openapi(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.openapi import write_openapi

    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_openapi(create_app(), out)
    except OSError as exc:
        print(f"billing-hub: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def connectors(args: argparse.Namespace) -> int:
    from gateway.connectors_report import connectors_report
    from gateway.settings import load_settings

    lines, ready = connectors_report(load_settings(), check=args.check)
    print("\n".join(lines))
    return 0 if ready else 2


# A client id is a bare TOML key in the policy file ([clients.<id>]) and the audit trail's client_id.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def keys_new(args: argparse.Namespace) -> int:
    from policies.keys import new_api_key

    if not _CLIENT_ID.fullmatch(args.client):
        # '[clients.bad name]]' or '[clients.a.b]' would be broken TOML, or a table nested in another.
        print("billing-hub: --client must be 1-64 letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    key, digest = new_api_key()
    print(f"API key (give it to the client, store it nowhere else): {key}")
    print(f"SHA-256 for the policy file:                             {digest}")
    print(f'\n[clients.{args.client}]\napi_key_sha256 = ["{digest}"]\nscopes = []')
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.governance_state import open_audit_log
    from gateway.settings import load_settings
    from gateway.store import HUB_DATABASE
    from policies.audit import verify_log

    settings = load_settings()
    database = Path(settings.data_dir) / HUB_DATABASE
    if settings.state_backend == "embedded" and not database.is_file():
        # Opening it would create an empty log that verifies: a wrong data directory must not pass.
        print(f"billing-hub: no hub database at {database} (BILLING_HUB_DATA_DIR)", file=sys.stderr)
        return 2

    async def verify() -> int:
        log, close = open_audit_log(settings)
        try:
            result = await verify_log(log)
        finally:
            await close()
        if result.ok:
            print(f"audit chain intact: {result.checked} records verified")
            return 0
        print(f"audit chain BROKEN at record {result.first_bad_seq}: {result.reason} ({result.checked} good before it)")
        return 1

    try:
        return asyncio.run(verify())
    except Exception as exc:  # not a verdict on the chain: say so, with an exit code of its own
        print(f"billing-hub: the audit chain could not be checked: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the hub (settings from BILLING_HUB_* variables)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=serve)
    p = commands.add_parser("dispatch", help="only deliver (API nodes run with BILLING_HUB_DISPATCHER_ENABLED=false)")
    p.set_defaults(func=dispatch)
    p = commands.add_parser("stubs", help="run the EHR, clearinghouse and ERP stub servers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--only", action="append", choices=sorted(STUBS))
    p.set_defaults(func=stubs)
    p = commands.add_parser(
        "connectors", help="installed connectors and their options; how each target is served (exit 2 if refused)"
    )
    p.add_argument("--check", action="store_true", help="also run each target connector's health check")
    p.set_defaults(func=connectors)
    p = commands.add_parser("keys", help="API keys")
    key_commands = p.add_subparsers(dest="keys_command", required=True)
    k = key_commands.add_parser("new", help="print a fresh API key and the SHA-256 to put in the policy file")
    k.add_argument("--client", default="new-client", help="client id for the printed policy snippet")
    k.set_defaults(func=keys_new)
    p = commands.add_parser("audit", help="the audit trail")
    audit_commands = p.add_subparsers(dest="audit_command", required=True)
    a = audit_commands.add_parser(
        "verify",
        help="check the hash chain; names the first changed/removed/moved record",
        description="Exit 0: intact; 1: broken (the first bad record is named); 2: refused settings or no "
        "hub database; 3: the chain could not be read (store unreachable or unreadable).",
    )
    a.set_defaults(func=audit_verify)
    p = commands.add_parser("openapi", help="write the v1 OpenAPI document")
    p.add_argument("--out", default="openapi/v1.json")
    p.set_defaults(func=openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.settings import SettingsError
    from policies.config import PolicyError

    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (SettingsError, PolicyError) as exc:  # the message names the setting or the policy key
        print(f"billing-hub: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
