"""Benchmark: 835 parse-to-canonical throughput and peak memory, and pyx12's validator for scale.

    python bench/make_835.py     # once: bench/data/835_8mb.x12 and 835_80mb.x12
    python bench/x12_bench.py    # or: --files bench/data/x.x12 --repeat 5 --skip-pyx12

Each file is parsed in a fresh subprocess (so its peak RSS is its own, read from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the child and cross-checked with
``RUSAGE_CHILDREN`` in the parent) through ``iter_835``: every claim becomes a canonical
``ClaimPayment`` with its service lines and adjustments, and balancing runs claim by claim, exactly
as the gateway reads a received 835. Throughput is reported per run (best and median), in MB/s
(10^6 bytes) of input and claims/s. pyx12's ``x12n_document`` (the engine behind ``x12valid``)
then validates the 8 MB file in its own subprocess, for a sense of scale.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
DEFAULT_FILES = [DATA / "835_8mb.x12", DATA / "835_80mb.x12"]
RSS_LIMIT_MB = 150
TARGET_MBPS = 10.0


def _parse_worker(path: Path, repeat: int) -> None:
    """Child process: parse ``path`` ``repeat`` times, print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from canonical.v1 import ClaimPayment
    from connectors.clearinghouse.x12._read835 import RemittanceTrailer, iter_835

    runs = []
    claims = findings = issues = 0
    for _ in range(repeat):
        claims = findings = issues = 0
        started = time.perf_counter()
        with path.open("rb") as stream:
            for event in iter_835(stream):
                if isinstance(event, ClaimPayment):
                    claims += 1
                elif isinstance(event, RemittanceTrailer):
                    findings += len(event.findings)
                    issues += len(event.issues)
        runs.append(time.perf_counter() - started)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"runs": runs, "claims": claims, "findings": findings, "issues": issues, "peak_kb": peak_kb}))


def _pyx12_worker(path: Path) -> None:
    import logging

    import pyx12.params
    import pyx12.x12n_document

    logging.disable(logging.CRITICAL)
    started = time.perf_counter()
    valid = pyx12.x12n_document.x12n_document(pyx12.params.params(), str(path), None, None)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "valid": bool(valid), "peak_kb": peak_kb}))


def _child(*args: str) -> tuple[dict[str, object], int]:
    """Run this script as a worker; its result and the children's peak RSS seen by the parent (kB)."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1]), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=Path, nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--repeat", type=int, default=3, help="parse runs per file (best and median shown)")
    parser.add_argument("--skip-pyx12", action="store_true")
    parser.add_argument("--worker", choices=["parse", "pyx12"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "parse":
        _parse_worker(args.path, args.repeat)
        return 0
    if args.worker == "pyx12":
        _pyx12_worker(args.path)
        return 0

    missing = [path for path in args.files if not path.is_file()]
    if missing:
        print(f"missing {', '.join(map(str, missing))}: run python bench/make_835.py first")
        return 2
    print(f"python {sys.version.split()[0]}, one process per file, iter_835 -> canonical ClaimPayment + balancing")
    ours: dict[Path, float] = {}
    ok = True
    for path in args.files:
        size = path.stat().st_size
        result, children_kb = _child("--worker", "parse", "--path", str(path), "--repeat", str(args.repeat))
        runs = [float(r) for r in result["runs"]]  # type: ignore[attr-defined]
        best, median = min(runs), statistics.median(runs)
        ours[path] = size / 1e6 / best
        peak_mb = int(result["peak_kb"]) / 1024  # type: ignore[call-overload]
        claims = int(result["claims"])  # type: ignore[call-overload]
        print(
            f"{path.name}: {size / 1e6:.1f} MB, {claims} claims, findings {result['findings']}, "
            f"issues {result['issues']}\n"
            f"  best {size / 1e6 / best:.2f} MB/s ({claims / best:,.0f} claims/s), "
            f"median {size / 1e6 / median:.2f} MB/s over {len(runs)} runs; "
            f"peak RSS {peak_mb:.1f} MB (parent sees children peak {children_kb / 1024:.1f} MB)"
        )
        ok = ok and peak_mb <= RSS_LIMIT_MB
    if not args.skip_pyx12:
        small = next((p for p in args.files if "8mb" in p.name), args.files[0])
        result, _ = _child("--worker", "pyx12", "--path", str(small))
        seconds = float(result["seconds"])  # type: ignore[arg-type]
        pyx12_mbps = small.stat().st_size / 1e6 / seconds
        print(
            f"pyx12 x12n_document on {small.name}: {seconds:.1f} s, {pyx12_mbps:.3f} MB/s, "
            f"valid={result['valid']}, peak RSS {int(result['peak_kb']) / 1024:.1f} MB; "  # type: ignore[call-overload]
            f"reader/pyx12 throughput ratio {ours[small] / pyx12_mbps:.0f}x"
        )
    best = max(ours.values())
    print(f"target >= {TARGET_MBPS} MB/s: best {best:.2f} MB/s; peak RSS <= {RSS_LIMIT_MB} MB: {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
