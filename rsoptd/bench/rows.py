"""What each row measures: rsoptd through rsoptctl beside its floor, interleaved A B A B.

Every function takes the daemon, the sizes and a Row, and appends one value per
repetition to each of the row's series, alternating between rsoptd and its floors.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsoptd import protocol
from rsoptd.bench.daemon import RSOPTCTL, BenchDaemon, children, mesh_config, status_kb
from rsoptd.bench.table import Row, Target

ROOT = Path(__file__).resolve().parents[2]
MPI_FUNCTIONS = '''
def touch(x, y):
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_rank() == 0:
        with open("out.txt", "w") as fh:
            fh.write(repr(x + y))

def read(J):
    with open("out.txt") as fh:
        return float(fh.read())
'''


@dataclass(frozen=True)
class Sizes:
    reps: int
    scan: tuple[int, int]  # mesh samples of the worker, thread and logs scans
    floor_calls: int  # calls timed by the pool floors
    libe: int  # evaluations of the libEnsemble floor
    process: tuple[int, int]  # mesh samples of the process-mode scan
    fork_calls: int
    fresh_calls: int
    mpi_evals: int
    latency: int  # submits (and pings) per repetition
    idle_seconds: float
    scale: tuple[int, int]
    optimizer: int


SIZES = {
    "default": Sizes(3, (100, 200), 20000, 5000, (40, 50), 2000, 100, 20, 5, 10.0, (1000, 1000), 5),
    "quick": Sizes(2, (50, 100), 5000, 1000, (20, 25), 500, 20, 6, 3, 3.0, (300, 300), 2),
    "smoke": Sizes(1, (5, 10), 100, 50, (2, 5), 10, 2, 1, 1, 0.3, (10, 20), 1),
}


def floor(name: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "rsoptd.bench.floors", name, str(n)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def scan_rate(d: BenchDaemon, status: dict[str, Any]) -> float:
    """Evaluations per second from the first evaluation's start to the last one's end."""
    records = d.results(status["id"])
    return len(records) / (max(r["ended"] for r in records) - min(r["started"] for r in records))


def libe_available() -> bool:
    try:
        import libensemble  # noqa: F401
    except ImportError:
        return False
    return True


def libe_rate(work: Path, n: int) -> float:
    scratch = work / "libe"
    scratch.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "rsoptd.bench.libe", str(n)], cwd=scratch, check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["rate"])


def worker_throughput(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    n = sz.scan[0] * sz.scan[1]
    row.add("rsoptd", f"rsoptd worker mode, {n:,}-point mesh_scan of x*y", "evals/s")
    row.add("pool", f"ProcessPoolExecutor(2), submit per call ({sz.floor_calls:,})", "calls/s")
    row.add("pool_map", "ProcessPoolExecutor(2), map(chunksize=50) (for reference)", "calls/s")
    libe = row.add("libe", f"libEnsemble, 2 workers, gen on manager ({sz.libe:,})", "evals/s",
                   note="libEnsemble not installed: pip install 'rsoptd[bench]'")
    row.targets += [Target(">= 2x the executor floor", "rsoptd", "pool", ">=", 2.0),
                    Target(">= 5x libEnsemble", "rsoptd", "libe", ">=", 5.0)]
    config = mesh_config(sz.scan)
    for _ in range(sz.reps):
        row.record("rsoptd", scan_rate(d, d.run(config)))
        row.record("pool", floor("process_pool_submit", sz.floor_calls)["rate"])
        row.record("pool_map", floor("process_pool_map", sz.floor_calls)["rate"])
        if libe_available():
            row.record("libe", libe_rate(d.work, sz.libe))
    if not libe.values:
        row.notes.append("libEnsemble row skipped: not installed (pip install 'rsoptd[bench]')")


def thread_throughput(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    n = sz.scan[0] * sz.scan[1]
    row.add("rsoptd", f"rsoptd thread mode, {n:,}-point mesh_scan", "evals/s")
    row.add("pool", f"ThreadPoolExecutor(2), submit per call ({sz.floor_calls:,})", "calls/s")
    row.targets.append(Target(">= 0.5x ThreadPoolExecutor(2)", "rsoptd", "pool", ">=", 0.5))
    config = mesh_config(sz.scan, mode="thread")
    for _ in range(sz.reps):
        row.record("rsoptd", scan_rate(d, d.run(config)))
        row.record("pool", floor("thread_pool", sz.floor_calls)["rate"])


def process_throughput(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    n = sz.process[0] * sz.process[1]
    row.add("rsoptd", f"rsoptd process mode, {n:,} evaluations", "evals/s")
    row.add("fork", f"fork per call, 2 at a time ({sz.fork_calls:,})", "calls/s")
    row.add("fresh", f"fresh `python -c` per call, 2 at a time ({sz.fresh_calls})", "calls/s")
    row.targets.append(Target(">= 2x fork per call", "rsoptd", "fork", ">=", 2.0))
    config = mesh_config(sz.process, mode="process")
    for _ in range(sz.reps):
        row.record("rsoptd", scan_rate(d, d.run(config)))
        row.record("fork", floor("fork_per_call", sz.fork_calls)["rate"])
        row.record("fresh", floor("fresh_interpreter", sz.fresh_calls)["rate"])


def parallel(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    """Per evaluation: rsoptd's cycle (one start to the next) beside a bare mpiexec launch."""
    row.add("rsoptd", f"rsoptd parallel evaluation, cores: 2 ({sz.mpi_evals} per run)", "ms")
    row.add("bare", "bare `mpiexec -n 2 python -c 'from mpi4py import MPI'`", "ms")
    row.targets.append(Target("<= 1.2x the bare launch", "rsoptd", "bare", "<=", 1.2))
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        row.notes.append("skipped: no mpiexec (install rsoptd[mpi])")
        return
    (d.work / "touch.py").write_text(MPI_FUNCTIONS)
    evals = max(sz.mpi_evals, 3)  # the first cycle also starts the objective helper: left out
    config = f"""
codes:
  - python:
      parameters:
        x: {{min: 0, max: 1, start: 0, samples: {evals}}}
        y: {{min: 0, max: 0, start: 0, samples: 1}}
      setup: {{input_file: touch.py, function: touch, execution_type: parallel, cores: 2}}
options: {{software: mesh_scan, nworkers: 1, objective_function: [touch.py, read]}}
"""
    bare = [mpiexec, "-n", "2", sys.executable, "-c", "from mpi4py import MPI"]
    for _ in range(sz.reps):
        starts = sorted(r["started"] for r in d.results(d.run(config)["id"]))
        row.record("rsoptd", 1000 * statistics.median(b - a for a, b in zip(starts[1:], starts[2:])))
        row.record("bare", 1000 * statistics.median(timed(bare) for _ in range(evals)))


def submit_latency(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    row.add("daemon", "daemon side: submit arriving -> first evaluation starting", "ms")
    row.add("round_trip", "one Unix socket round trip (floor)", "ms")
    row.add("wait", "`rsoptctl submit --wait` of a 1-point scan", "ms")
    row.add("pass", "`python -c pass`", "ms")
    row.targets += [Target("daemon side <= 5 ms", "daemon", None, "<=", 5.0),
                    Target("submit --wait <= 2.5x python -c pass", "wait", "pass", "<=", 2.5)]
    path = d.write_config(mesh_config((1, 1)))
    d.ctl("submit", str(path), "--wait")  # warm: a daemon that has run this shell's work before
    for _ in range(sz.reps):
        daemon_side, walls = [], []
        for _ in range(sz.latency):
            started = time.perf_counter()
            out = d.ctl("submit", str(path), "--wait", "--json").stdout
            walls.append(time.perf_counter() - started)
            status = json.loads(out)
            daemon_side.append(d.results(status["id"])[0]["started"] - status["created"])
        row.record("daemon", 1000 * statistics.median(daemon_side))
        row.record("round_trip", 1000 * floor("socket_round_trip", 1000)["seconds"])
        row.record("wait", 1000 * statistics.median(walls))
        row.record("pass", 1000 * statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(sz.latency)))


def client_start(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    row.add("ping", "`rsoptctl ping`", "ms")
    row.add("imports", "`python -c 'import json, socket, argparse'`", "ms")
    row.targets.append(Target("<= 1.2x the imports", "ping", "imports", "<=", 1.2))
    ping = [RSOPTCTL, "--no-autostart", "ping"]
    imports = [sys.executable, "-c", "import json, socket, argparse"]
    for _ in range(sz.reps):
        for _ in range(sz.latency):
            row.record("ping", 1000 * timed(ping, env=d.env))
            row.record("imports", 1000 * timed(imports))


def idle_daemon(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    row.add("rss", "rsoptd RSS, idle after the rows above", "MB")
    row.add("fresh", "a freshly started rsoptd, idle beside it: RSS", "MB")
    row.add("cpu", f"rsoptd CPU over {sz.idle_seconds:g} s idle", "%")
    row.add("workers", "idle executors kept, and RSS per idle executor", "MB")
    row.add("bare", "a bare asyncio process: RSS", "MB")
    row.targets += [Target("daemon RSS <= 60 MB, after the rows above", "rss", None, "<=", 60.0),
                    Target("daemon RSS <= 60 MB, fresh", "fresh", None, "<=", 60.0),
                    Target("CPU ~ 0 (<= 0.5 %)", "cpu", None, "<=", 0.5)]
    bare = subprocess.Popen([sys.executable, "-c", "import asyncio; asyncio.run(asyncio.sleep(3600))"])
    (d.work / "fresh").mkdir(exist_ok=True)
    try:
        with BenchDaemon(d.work / "fresh") as fresh:
            for _ in range(sz.reps):
                cpu = d.cpu_seconds()
                time.sleep(sz.idle_seconds)
                row.record("cpu", 100 * (d.cpu_seconds() - cpu) / sz.idle_seconds)
                row.record("rss", d.rss_mb())
                row.record("fresh", fresh.rss_mb())
                idle = children(d.pid)
                if idle:
                    row.record("workers", statistics.mean(status_kb(p, "VmRSS") for p in idle) / 1024)
                row.record("bare", status_kb(bare.pid, "VmRSS") / 1024)
    finally:
        bare.kill()
        bare.wait()
    if not row.series["workers"].values:
        row.notes.append("no idle executors: none were started ahead (see executors.Spares)")


def logs(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    n = sz.scan[0] * sz.scan[1]
    row.add("alone", f"worker scan printing a line each ({n:,}), no subscriber", "evals/s")
    row.add("delivered", "events delivered to a `logs -f` subscriber during it", "events/s")
    row.add("followed", "the same scan, followed by that subscriber", "evals/s")
    row.add("stalled", "the same scan, with a stalled subscriber attached", "evals/s")
    row.add("still", "the next scan, that subscriber still stalled", "evals/s")
    row.targets += [Target("a stalled subscriber costs < 5 %", "stalled", "alone", ">=", 0.95),
                    Target("... once known to be stalled", "still", "alone", ">=", 0.95)]
    config = mesh_config(sz.scan, function="chatty")
    for _ in range(sz.reps):
        row.record("alone", scan_rate(d, d.run(config)))
        with Follower(d) as follower:
            status = d.run(config)
            row.record("followed", scan_rate(d, status))
        row.record("delivered", follower.count(status["id"]) / (status["ended"] - status["started"]))
        with StalledSubscriber(d):
            row.record("stalled", scan_rate(d, d.run(config)))
            row.record("still", scan_rate(d, d.run(config)))


class Follower:
    """`rsoptctl logs -f --json`, its lines counted by run as they arrive."""

    def __init__(self, d: BenchDaemon) -> None:
        self.process = subprocess.Popen([RSOPTCTL, "--no-autostart", "logs", "-f", "--json", "-n", "1"],
                                        env=d.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: list[bytes] = []
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self.first.set()
        self.first.set()

    def __enter__(self) -> Follower:
        self.thread.start()
        self.first.wait(10)  # the daemon has sent its recent event: we are subscribed
        return self

    def __exit__(self, *exc: Any) -> None:
        time.sleep(0.2)  # let the last events arrive
        self.process.terminate()
        self.process.wait()
        self.thread.join(5)

    def count(self, run_id: int) -> int:
        return sum(json.loads(line).get("run_id") == run_id for line in self.lines)


class StalledSubscriber:
    """A `logs -f` subscriber that never reads past its first reply."""

    def __init__(self, d: BenchDaemon) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(str(d.socket))

    def __enter__(self) -> StalledSubscriber:
        self.sock.sendall(protocol.encode({"op": "logs", "follow": True, "limit": 1}))
        self.sock.makefile("rb").readline()  # the reply: subscribed
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


def scale(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    """A long worker scan on a daemon of its own, so that its peak RSS is the scan's."""
    n = sz.scale[0] * sz.scale[1]
    row.add("rss_10", f"{n:,}-point worker mesh_scan: RSS at 10 % done", "MB")
    row.add("rss_90", "daemon RSS at 90 % done", "MB")
    row.add("peak_run", "peak RSS (VmHWM) through the run and history.npy", "MB")
    row.add("peak", "peak RSS after `rsoptctl results --format npy` too", "MB")
    row.add("db", "database size after the run", "MB")
    row.add("first", "evaluations/s over the first 10 % (by sim_id)", "evals/s")
    row.add("last", "evaluations/s over the last 10 %", "evals/s")
    row.targets += [Target("flat evaluations/s: last / first 10 %", "last", "first", ">=", 0.9),
                    Target("memory flat: RSS at 90 % / at 10 %", "rss_90", "rss_10", "<=", 1.1)]
    (d.work / "scale").mkdir(exist_ok=True)
    with BenchDaemon(d.work / "scale") as own:
        path = own.write_config(mesh_config(sz.scale))
        run_id = json.loads(own.ctl("submit", str(path), "--json").stdout)["id"]
        marks = {"rss_10": 0.1, "rss_90": 0.9}
        while True:
            status = json.loads(own.ctl("status", str(run_id), "--json").stdout)
            for key, fraction in list(marks.items()):
                if status["done"] >= fraction * n:
                    row.record(key, own.rss_mb())
                    del marks[key]
            if status["state"] not in ("queued", "running"):
                break
            time.sleep(0.05 if n < 100000 else 0.5)
        if status["state"] != "completed":
            raise RuntimeError(f"the scale run ended {status['state']}: {status['message']}")
        row.record("peak_run", own.rss_mb("VmHWM"))
        history = own.results_npy(run_id)
        row.record("peak", own.rss_mb("VmHWM"))
        row.record("db", json.loads(own.ctl("ping", "--json").stdout)["database_bytes"] / 1e6)
    tenth = max(1, len(history) // 10)
    for key, part in (("first", history[:tenth]), ("last", history[-tenth:])):
        row.record(key, len(part) / float(part["sim_ended_time"].max() - part["sim_started_time"].min()))


def optimizer(d: BenchDaemon, sz: Sizes, row: Row) -> None:
    row.add("wall", "rsopt quickstart (camel, BOBYQA, 30 evals), submit --wait", "s")
    row.add("daemon", "of which in the daemon: submit to the run's end", "s")
    row.targets.append(Target("< 0.3 s from submit to result", "wall", None, "<=", 0.3))
    row.notes.append("rsopt takes about 2.2 s for the same (the issue's figure; not measured here)")
    shutil.copy(ROOT / "examples" / "camel.py", d.work / "camel.py")
    text = (ROOT / "examples" / "optimize_nlopt.yml").read_text().replace("run_dir: ensemble_nlopt", "run_dir: nlopt")
    path = d.write_config(text)
    for _ in range(sz.reps * sz.optimizer):
        started = time.perf_counter()
        status = json.loads(d.ctl("submit", str(path), "--wait", "--json").stdout)
        row.record("wall", time.perf_counter() - started)
        row.record("daemon", status["ended"] - status["created"])


ROWS = {
    "worker": ("worker throughput", worker_throughput),
    "thread": ("thread throughput", thread_throughput),
    "process": ("process throughput", process_throughput),
    "parallel": ("parallel", parallel),
    "latency": ("submit latency", submit_latency),
    "client": ("client start", client_start),
    "logs": ("logs", logs),
    "scale": ("scale", scale),
    "optimizer": ("optimizer", optimizer),
    "idle": ("idle daemon", idle_daemon),  # last: idle after everything above
}
