"""Parallel evaluations: each one is ``mpiexec -n K python -m rsoptd.mpi_runner SIM_DIR``.

An MpiLane stands where an ExecutorProcess stands in a run's lane (``send`` a
batch, ``receive`` one result per point then ``("end",)``, ``kill``,
``close``), so the lane code in rsoptd.runs reuses its crash and cancel
handling.  For each point it

1. writes the inputs as JSON into ``sim_<id>`` (data, never source code);
2. launches the MPI job in a session of its own and awaits its exit (no
   polling), copying every rank's stdout and stderr into ``sim_<id>/stdout.log``
   and ``stderr.log`` and, while someone follows the logs, streaming the lines;
3. asks the lane's helper (rsoptd.mpi_objective, a child process) to run the
   objective function with ``J['sim_status']`` 34 (done), 33 (failed) or 32
   (timed out), so that a failed launch can still be given a penalty.

The launcher applies the run's ``timeout`` to the MPI job itself (runs.py adds
OBJECTIVE_GRACE to its own), because the objective must still run after a kill.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sys
import time
from collections import deque
from typing import Any

from rsoptd.config import Launcher, RunSpec
from rsoptd.errors import ExecutorDied, describe_exit
from rsoptd.evaluate import TASK_FAILED, WORKER_DONE, WORKER_KILL_ON_TIMEOUT, Task
from rsoptd.executor import tail
from rsoptd.executors import LIVE, ExecutorProcess
from rsoptd.logs import LogHub, get_logger
from rsoptd.mpi_runner import JOB_FILE

# The daemon's configuration may set this; a run's options.mpi_launcher wins over it.
# None: "mpiexec" on the run's PATH, else the one installed beside rsoptd's Python.
DEFAULT_LAUNCHER: Launcher | None = None
OBJECTIVE_GRACE = 30.0  # seconds runs.py allows past the timeout, for the objective after a kill
OUTPUT_DRAIN = 1.0  # seconds to wait for the output pipes to close once mpiexec has exited
TAIL_LINES = 20
CHUNK = 65536
MAX_LINE = 4000  # characters of one streamed output line; the files keep everything
HELPER = "rsoptd.mpi_objective"
log = get_logger()


def launcher_argv(launcher: Launcher | None, env: dict[str, str]) -> list[str]:
    """The launcher's command line up to the rank count; ExecutorDied if it is not installed."""
    launcher = launcher or DEFAULT_LAUNCHER or Launcher("mpiexec")
    found = shutil.which(launcher.command, path=env.get("PATH", os.defpath))
    if found is None and os.sep not in launcher.command:
        # rsoptd[mpi] installs PyPI's mpich, whose mpiexec lies beside this Python
        found = shutil.which(launcher.command, path=os.path.dirname(sys.executable))
    if found is None:
        raise ExecutorDied(None, f"MPI launcher {launcher.command!r} not found on the run's PATH nor in "
                                 f"{os.path.dirname(sys.executable)}; install rsoptd[mpi] or set options.mpi_launcher")
    return [found, *launcher.args]


class MpiLane:
    def __init__(self, argv: list[str], task: Task, env: dict[str, str], spec: RunSpec, hub: LogHub) -> None:
        self.argv = argv
        self.task = task
        self.env = env
        self.cores = spec.code.cores
        self.timeout = spec.code.timeout
        self.hub = hub
        self.helper: ExecutorProcess | None = None
        self.job: asyncio.subprocess.Process | None = None
        self._points: deque[tuple[int, tuple[float, ...]]] = deque()

    @classmethod
    async def start(cls, task: Task, env: dict[str, str], spec: RunSpec, hub: LogHub) -> MpiLane:
        lane = cls(launcher_argv(spec.launcher, env), task, env, spec, hub)
        lane.helper = await ExecutorProcess.start(task, env, module=HELPER)
        LIVE.add(lane)
        return lane

    # -- the ExecutorProcess interface --

    async def send(self, message: Any) -> None:
        _, points, _tail = message  # output is streamed live, so the tail is not needed
        self._points.extend(points)

    async def receive(self) -> Any:
        if not self._points:
            return ("end",)
        sim_id, x = self._points.popleft()
        return await self._evaluate(sim_id, x)

    def signal_group(self, signum: int) -> None:
        """Used at shutdown: every process of the MPI job goes, and the helper."""
        if self.job is not None and self.job.returncode is None:
            kill_tree(self.job.pid)
        if self.helper is not None:
            self.helper.signal_group(signum)

    async def kill(self) -> None:
        if self.job is not None:
            if self.job.returncode is None:  # once reaped, its pid may already belong to someone else
                kill_tree(self.job.pid)
            await self.job.wait()
        if self.helper is not None:
            await self.helper.kill()
        LIVE.discard(self)

    async def close(self) -> None:
        if self.job is not None and self.job.returncode is None:
            kill_tree(self.job.pid)
            await self.job.wait()
        if self.helper is not None:
            await self.helper.close()
        LIVE.discard(self)

    # -- one evaluation --

    async def _evaluate(self, sim_id: int, x: tuple[float, ...]) -> tuple[Any, ...]:
        started = time.time()
        sim_dir = os.path.join(self.task.run_dir, f"sim_{sim_id}")
        os.makedirs(sim_dir, exist_ok=True)
        inputs = dict(self.task.settings)
        inputs.update(zip(self.task.names, x))
        if self.task.preprocess:
            _, inputs, error = await self._ask(("pre", sim_id, sim_dir, inputs, None))
            if error:
                return ("result", sim_id, "failed", math.nan, error, False, started, time.time(), [])
        try:
            self._write_job(sim_dir, inputs)
        except (TypeError, ValueError) as exc:
            status, sim_status, error = "failed", TASK_FAILED, f"the inputs cannot be passed to the MPI ranks as JSON: {exc}"
        else:
            status, sim_status, error = await self._launch(sim_id, sim_dir)
        _, f, objective_error = await self._ask(("post", sim_id, sim_dir, inputs, sim_status))
        if objective_error:
            error = f"{error}\n{objective_error}" if error else objective_error
            status = "failed" if status == "ok" else status
        return ("result", sim_id, status, f, error, False, started, time.time(), [])

    def _write_job(self, sim_dir: str, inputs: dict[str, Any]) -> None:
        for name, value in inputs.items():
            _check_plain(value, name)
        text = json.dumps({"function": list(self.task.function), "inputs": inputs, "ranks": self.cores})
        with open(os.path.join(sim_dir, JOB_FILE), "w", encoding="utf-8") as fh:
            fh.write(text)

    async def _ask(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        """A request to the helper; a dead helper gives an error reply and is started afresh next time."""
        try:
            if self.helper is None:
                self.helper = await ExecutorProcess.start(self.task, self.env, module=HELPER)
            await self.helper.send(request)
            reply: tuple[Any, ...] = await self.helper.receive()
            return reply
        except ExecutorDied as exc:
            self.helper = None
            return (request[0], request[3] if request[0] == "pre" else math.nan,
                    f"the process running the {'preprocess' if request[0] == 'pre' else 'objective'} function {exc}")

    async def _launch(self, sim_id: int, sim_dir: str) -> tuple[str, int, str | None]:
        """Run the MPI job; returns (status, J['sim_status'], error)."""
        argv = [*self.argv, "-n", str(self.cores), sys.executable, "-m", "rsoptd.mpi_runner", sim_dir]
        stderr_path = os.path.join(sim_dir, "stderr.log")
        mark = os.path.getsize(stderr_path) if os.path.exists(stderr_path) else 0
        try:
            job = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=sim_dir, env=self.env, start_new_session=True)
        except OSError as exc:
            return "failed", TASK_FAILED, f"cannot launch {argv[0]}: {exc}"
        self.job = job
        assert job.stdout is not None and job.stderr is not None
        pumps = [asyncio.create_task(self._pump(job.stdout, os.path.join(sim_dir, "stdout.log"), "stdout", sim_id)),
                 asyncio.create_task(self._pump(job.stderr, stderr_path, "stderr", sim_id))]
        try:
            returncode: int | None = await asyncio.wait_for(job.wait(), self.timeout)
        except TimeoutError:
            returncode = None
        finally:  # a timeout, or the lane cancelled: nothing of the job may outlive this
            if job.returncode is None:
                kill_tree(job.pid)
            await _drain(pumps)
        self.job = None
        await job.wait()
        name = os.path.basename(argv[0])
        if returncode is None:
            log.warning("MPI job timed out; killed", sim_id=sim_id, timeout=self.timeout)
            return "timeout", WORKER_KILL_ON_TIMEOUT, f"no result within the timeout of {self.timeout} s; killed the MPI job ({name} and every rank)"
        if returncode != 0:
            return "failed", TASK_FAILED, (f"{name} {describe_exit(returncode).removeprefix('process ')}; "
                                           f"the last lines of its stderr:\n" + _tail(stderr_path, mark))
        return "ok", WORKER_DONE, None

    async def _pump(self, stream: asyncio.StreamReader, path: str, name: str, sim_id: int) -> None:
        """Copy one output pipe of the job into its file; publish its lines while anyone follows the logs."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        partial = b""
        try:
            while chunk := await stream.read(CHUNK):
                _write_all(fd, chunk)  # a local file: a short write, fine on the loop
                if self.hub.subscribers:
                    partial = _publish(sim_id, name, partial + chunk)
                else:
                    partial = b""
            if partial and self.hub.subscribers:
                _publish(sim_id, name, partial + b"\n")
        finally:
            os.close(fd)


def _check_plain(value: Any, where: str) -> None:
    """JSON carries these unchanged; anything else (a date, a set, an integer key) would arrive altered."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}; only string keys pass unchanged")
            _check_plain(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} is a {type(value).__name__}; only strings, numbers, booleans, null, lists and mappings pass")


def _publish(sim_id: int, stream: str, data: bytes) -> bytes:
    """Log every complete line; return the incomplete rest."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        text = line.decode(errors="replace").rstrip("\r")
        log.info("output", sim_id=sim_id, stream=stream, line=text[:MAX_LINE])
    return rest[-CHUNK:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def _drain(pumps: list[asyncio.Task[None]]) -> None:
    # A process the ranks left behind may hold the pipes open: do not wait for it forever.
    done, pending = await asyncio.wait(pumps, timeout=OUTPUT_DRAIN)
    for pump in pending:
        pump.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


def _tail(path: str, start: int) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return "\n".join(tail(fd, start, TAIL_LINES))
    finally:
        os.close(fd)


def kill_tree(pid: int) -> None:
    """SIGKILL a launcher, every process below it, and their process groups.

    Its own process group is not enough: Hydra (MPICH's mpiexec) starts its
    proxy and every rank in a session of their own.  So the tree is read from
    /proc while the launcher still lives (its children have not been handed to
    init yet), then everything in it goes at once.
    """
    victims = [(pid, pid), *_descendants(pid)]
    for child, group in reversed(victims):
        for kill, target in ((os.killpg, group), (os.kill, child)):
            try:
                kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, process group) of every process below root, read from /proc (Linux); [] elsewhere."""
    children: dict[int, list[tuple[int, int]]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[2])))
    found: list[tuple[int, int]] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child[0])
    return found
