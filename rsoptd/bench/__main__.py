"""python -m rsoptd.bench [--quick | --smoke] [--only ROW ...] [--json FILE]

Starts a private rsoptd (2 slots, temporary socket and state), measures every row beside
its floors, interleaved with repetitions, prints the table and writes the same as JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rsoptd.bench import rows as measure
from rsoptd.bench.daemon import BenchDaemon
from rsoptd.bench.table import Row, render, to_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsoptd.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions (under a minute)")
    size.add_argument("--smoke", action="store_true", help="the smallest sizes: checks that every row runs")
    parser.add_argument("--only", nargs="+", choices=list(measure.ROWS), metavar="ROW",
                        help=f"only these rows ({', '.join(measure.ROWS)})")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "default"
    sizes = measure.SIZES[mode]
    compile_sources()
    work = Path(tempfile.mkdtemp(prefix="rsoptd-bench-"))
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        with BenchDaemon(work) as daemon:
            for key, (name, function) in measure.ROWS.items():
                if args.only and key not in args.only:
                    continue
                row = Row(name)
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                function(daemon, sizes, row)
                row.judge()
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    meta = {"mode": mode, "sizes": sizes.__dict__, "seconds": elapsed, "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": platform.machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(render(rows))
    print(f"\n{mode} run, {elapsed:.0f} s on {os.cpu_count()} CPUs; medians of repetitions interleaved with their floors")
    args.json.write_text(to_json(rows, meta))
    print(f"JSON: {args.json}")
    return 0


def compile_sources() -> None:
    """Byte-compile rsoptd and rsoptctl, as pip does when it installs them: with
    PYTHONDONTWRITEBYTECODE set (or a fresh editable checkout) every client and executor would
    otherwise compile its modules at each start, while the floors' stdlib is compiled."""
    import compileall

    import rsoptctl
    import rsoptd

    for package in (rsoptd, rsoptctl):
        for folder in package.__path__:
            if os.path.isdir(folder):  # an editable install lists a path hook too
                compileall.compile_dir(folder, quiet=1)


if __name__ == "__main__":
    sys.exit(main())
