"""What rsoptd adds to one parallel (MPI) evaluation, over a bare launch; run with the project's venv:

    .venv/bin/python bench/mpi_overhead.py [--rounds 5] [--evals 20]

Interleaves, round after round, EVALS bare ``mpiexec -n 2 python -c 'from mpi4py import MPI'``
launches with one rsoptd run of EVALS parallel evaluations (cores: 2, nworkers: 1, so one at a
time, like the bare launches).  Each evaluation's function imports mpi4py on both ranks and
rank 0 writes a small file that the objective function reads, the least a real parallel
evaluation does.  Starts its own daemon on a temporary socket (2 slots), through rsoptctl.

Per evaluation, rsoptd's time is the cycle from one evaluation's start to the next one's start
(launch, wait, objective, record, dispatch); the first cycle of a run also starts the lane's
objective helper, so it is left out of the cycle median and shown in the per-run figure.
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
FUNCTION = """
def touch(x, y):
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_rank() == 0:
        with open("out.txt", "w") as fh:
            fh.write(repr(x + y))

def read(J):
    with open("out.txt") as fh:
        return float(fh.read())
"""
CONFIG = """
codes:
  - python:
      parameters:
        x: {{min: 0, max: 1, start: 0, samples: {evals}}}
        y: {{min: 0, max: 0, start: 0, samples: 1}}
      setup: {{input_file: touch.py, function: touch, execution_type: parallel, cores: 2}}
options: {{software: mesh_scan, nworkers: 1, objective_function: [touch.py, read], run_dir: run_{i}}}
"""


def bare_launch(mpiexec: str) -> float:
    started = time.perf_counter()
    subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", "from mpi4py import MPI"], check=True)
    return time.perf_counter() - started


def rsoptd_run(work: Path, env: dict[str, str], i: int, evals: int) -> tuple[list[float], list[float], float]:
    """(cycles between successive evaluation starts after the first, evaluation times, run time per evaluation)."""
    config = work / f"run-{i}.yml"
    config.write_text(CONFIG.format(evals=evals, i=i))
    out = subprocess.run([BIN / "rsoptctl", "submit", str(config), "--wait", "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    status = json.loads(out)
    assert status["done"] == evals and status["failed"] == 0, status
    records = json.loads(subprocess.run([BIN / "rsoptctl", "results", str(status["id"]), "--format", "json"],
                                        env=env, check=True, capture_output=True, text=True).stdout)
    starts = sorted(r["started"] for r in records)
    cycles = [b - a for a, b in zip(starts[1:], starts[2:])]
    return cycles, [r["ended"] - r["started"] for r in records], (status["ended"] - status["started"]) / evals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--evals", type=int, default=20)
    args = parser.parse_args()
    mpiexec = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
    assert mpiexec, "no mpiexec: install rsoptd[mpi]"
    work = Path(tempfile.mkdtemp(prefix="rsd-mpi-bench-"))
    env = dict(os.environ, RSOPTD_SOCKET=str(work / "s" / "rsoptd.sock"))
    daemon = subprocess.Popen([BIN / "rsoptd", "--state-dir", str(work / "state"), "--cores", "2"],
                              env=env, stderr=subprocess.DEVNULL)
    try:
        while subprocess.run([BIN / "rsoptctl", "--no-autostart", "ping"], env=env, capture_output=True).returncode:
            time.sleep(0.05)
        (work / "touch.py").write_text(FUNCTION)
        bare: list[float] = []
        cycles: list[float] = []
        inside: list[float] = []
        per_run: list[float] = []
        for i in range(args.rounds):
            bare += [bare_launch(mpiexec) for _ in range(args.evals)]
            run_cycles, run_inside, run_mean = rsoptd_run(work, env, i, args.evals)
            cycles += run_cycles
            inside += run_inside
            per_run.append(run_mean)
        b, c, e, r = (1000 * statistics.median(v) for v in (bare, cycles, inside, per_run))
        print(f"{args.rounds} rounds of {args.evals}, interleaved; mpiexec: {mpiexec}")
        print(f"bare mpiexec -n 2 python -c 'from mpi4py import MPI': median {b:6.0f} ms  (n={len(bare)})")
        print(f"rsoptd parallel evaluation, start to next start:    median {c:6.0f} ms  (n={len(cycles)})")
        print(f"  of which launch, wait and objective (sim record):  median {e:6.0f} ms  (n={len(inside)})")
        print(f"rsoptd run time / evaluations (incl. helper start): median {r:6.0f} ms  (n={len(per_run)})")
        print(f"extra time rsoptd adds per evaluation: median {c - b:+.0f} ms ({c / b:.2f}x the bare launch)")
    finally:
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
