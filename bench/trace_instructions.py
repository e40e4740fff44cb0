"""Tracing's cost in instructions per request, counted by valgrind: a figure the machine's noise cannot move.

``make bench`` reads tracing's cost from req/s and CPU time under load, and on a shared 2-core machine
those moved 20-30 % between runs of the same code. Instructions executed are repeatable for the same
program and input whatever else the machine does. This runs ``bench/inproc_bench.py`` (the hub app
in-process, embedded store, hub only accepting) under ``valgrind --tool=callgrind`` once with a few
requests and once with many, per tracing setting; the difference over the extra requests is the
instructions one request costs, start-up and warm-up cancelled out. Settings: tracing off, and the
SDK with a discarding exporter sampling 0 %, 10 % and 100 % (``parentbased_traceidratio``).

It counts the hub process only: the server (uvicorn, the kernel's sockets) and the load generator are
left out, so the share tracing adds to a whole request is smaller than the share shown here.

With ``--backend redis --settings off`` it counts the policy chain's own cost per request (key auth,
Redis rate limit, idempotency, store on Redis; the Redis server's instructions are not the hub's):
the noise-free figure for a change to the write path, which ``make bench`` cannot resolve below ~15 %.

    python bench/trace_instructions.py [get] [post] [--few 200] [--many 1000] [--backend redis] [--settings off]

Needs valgrind (``apt-get install valgrind``). About a minute per run, two runs at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
_DISCARD = {"BILLING_HUB_TRACE_EXPORTER": "discard", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
SETTINGS: dict[str, dict[str, str]] = {
    "off": {},
    "0 %": {**_DISCARD, "OTEL_TRACES_SAMPLER_ARG": "0"},
    "10 %": {**_DISCARD, "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "100 %": {**_DISCARD, "OTEL_TRACES_SAMPLER_ARG": "1"},
}
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(route: str, requests: int, setting: str, workdir: Path, backend: str = "embedded") -> int:
    env = SETTINGS[setting]
    out = workdir / f"callgrind.{route}.{requests}.{setting.replace(' %', 'pct')}.{backend}"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, str(HERE / "inproc_bench.py"), route, "--rounds", "1", "--requests", str(requests),
        "--backend", backend,
    ]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("routes", nargs="*", default=["get", "post"])
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument(
        "--backend",
        choices=["embedded", "redis"],
        default="embedded",
        help="the store and policy state: redis is the bench's policy chain (REDIS_URL)",
    )
    names = ", ".join(SETTINGS).replace("%", "%%")  # argparse formats help with %
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of: {names}")
    args = parser.parse_args()
    settings = [name.strip() for name in args.settings.split(",") if name.strip()]
    if "off" not in settings or not set(settings) <= set(SETTINGS):
        parser.error(f"--settings needs 'off' (the baseline) and only: {', '.join(SETTINGS)}")
    if shutil.which("valgrind") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="trace-instr-") as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        for route in args.routes:
            runs = {
                (name, n): pool.submit(instructions, route, n, name, Path(tmp), args.backend)
                for name in settings
                for n in (args.few, args.many)
            }
            per_request = {
                name: (runs[name, args.many].result() - runs[name, args.few].result()) / (args.many - args.few)
                for name in settings
            }
            base = per_request["off"]
            print(f"{route.upper()} (in-process, {args.backend} store; instructions per request, valgrind):")
            for name, count in per_request.items():
                print(f"  tracing {name:<6} {count:12,.0f}  {100 * (count / base - 1):+6.1f} % vs off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
