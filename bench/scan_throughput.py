"""Evaluations per second of a 2,000-point mesh_scan of a trivial function, per mode,
and the client's start time; run with the project's venv:

    .venv/bin/python bench/scan_throughput.py [--repeat 3]

Starts its own daemon on a temporary socket (2 slots) and drives it through rsoptctl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
FUNCTION = "def trivial(x, y):\n    return x + y\n"
CONFIG = """
codes:
  - python:
      parameters:
        x: {{min: 0, max: 1, start: 0, samples: 40}}
        y: {{min: 0, max: 1, start: 0, samples: 50}}
      setup: {{input_file: trivial.py, function: trivial, execution_type: serial, serial_python_mode: {mode}}}
options: {{software: mesh_scan, nworkers: 2, run_dir: run_{mode}}}
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rsd-bench-"))
    env = dict(os.environ, RSOPTD_SOCKET=str(work / "s" / "rsoptd.sock"))
    daemon = subprocess.Popen([BIN / "rsoptd", "--state-dir", str(work / "state"), "--cores", "2"],
                              env=env, stderr=subprocess.DEVNULL)
    try:
        while subprocess.run([BIN / "rsoptctl", "--no-autostart", "ping"], env=env, capture_output=True).returncode:
            time.sleep(0.05)
        (work / "trivial.py").write_text(FUNCTION)
        rows = []
        for mode in ("worker", "thread", "process"):
            rates, walls = [], []
            for i in range(args.repeat):
                config = work / f"{mode}-{i}.yml"
                config.write_text(CONFIG.format(mode=mode))
                started = time.perf_counter()
                out = subprocess.run([BIN / "rsoptctl", "submit", str(config), "--wait", "--json"],
                                     env=env, check=True, capture_output=True, text=True).stdout
                walls.append(time.perf_counter() - started)
                status = json.loads(out)
                assert status["done"] == 2000 and status["failed"] == 0, status
                rates.append(2000 / (status["ended"] - status["started"]))
            rows.append((mode, statistics.median(rates), 2000 / statistics.median(walls)))
        ping = [timed([str(BIN / "rsoptctl"), "--no-autostart", "ping"], env) for _ in range(10)]
        bare = [timed([sys.executable, "-c", "pass"], env) for _ in range(10)]
        print(f"{'mode':8} {'evals/s (run)':>14} {'evals/s (submit to end)':>24}")
        for mode, rate, wall in rows:
            print(f"{mode:8} {rate:14.0f} {wall:24.0f}")
        print(f"rsoptctl ping: median {1000 * statistics.median(ping):.0f} ms "
              f"(python -c pass: {1000 * statistics.median(bare):.0f} ms)")
    finally:
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
