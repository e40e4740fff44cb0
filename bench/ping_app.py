"""A bare Litestar app with ``GET /ping``: the floor the hub's routes are compared against.

Served with exactly the uvicorn settings ``billing-hub serve`` uses (the same ``_uvicorn_options``:
uvloop, httptools, access log off, one worker), so the difference from the hub's routes is the hub's
own work: middleware, guards, validation, the store, the dispatcher.

    python bench/ping_app.py --port 8090
"""

from __future__ import annotations

import argparse
import sys

from litestar import Litestar, get


@get("/ping", sync_to_thread=False)
def ping() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[ping], openapi_config=None, debug=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    from gateway.cli import _uvicorn_options  # the hub's own settings, so the comparison is like for like

    uvicorn.run(create_app(), host=args.host, port=args.port, timeout_graceful_shutdown=10, **_uvicorn_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
