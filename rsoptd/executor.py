"""The executor: a long-lived child process that evaluates points for one run.

Started by the daemon as ``python -m rsoptd.executor`` with the submitter's
environment.  Requests arrive on fd 0 and results leave on fd 1 as
length-prefixed pickles; both fds are then moved aside so the user's function
can print freely: its stdout and stderr go to files, never into the channel.

Modes: ``worker`` calls the function in this process, ``thread`` in a
persistent evaluation thread of it (not the main thread; started once, since a
thread per evaluation cost more than the evaluation), ``process`` in a child
forked per evaluation (this process never
runs the user's code in that mode, so every child starts clean: it only
compiles the file, and each child executes the module afresh).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import struct
import sys
import time
from typing import Any, BinaryIO

from rsoptd.evaluate import Evaluator, Outcome, Task

HEADER = struct.Struct("!I")
TAIL_BYTES = 4096


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return pickle.loads(stream.read(size))


_PRCTL: Any = None  # looked up once: a forked child then only makes the call


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when our parent dies (Linux), so a killed daemon leaves nothing."""
    global _PRCTL
    try:
        if _PRCTL is None:
            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Output:
    """Points fds 1 and 2 at per-evaluation files, or at this worker's files."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.default = (_open_log(worker_log(task, "stdout")), _open_log(worker_log(task, "stderr")))
        self._point(self.default)

    def begin(self, sim_dir: str | None) -> tuple[int, int] | None:
        if sim_dir is None:
            return None
        fds = (_open_log(os.path.join(sim_dir, "stdout.log")), _open_log(os.path.join(sim_dir, "stderr.log")))
        self._point(fds)
        return fds

    def end(self, fds: tuple[int, int] | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        if fds is not None:
            self._point(self.default)
            for fd in fds:
                os.close(fd)

    def marks(self) -> tuple[int, int]:
        return os.lseek(1, 0, os.SEEK_END), os.lseek(2, 0, os.SEEK_END)

    @staticmethod
    def _point(fds: tuple[int, int]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)


def worker_log(task: Task, stream: str) -> str:
    """Where a worker's output goes when the run has no evaluation directories."""
    return os.path.join(task.run_dir, f"worker-{task.worker}.{stream}.log")


def _open_log(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)  # read back for log tails


def tail(fd: int, start: int, lines: int) -> list[str]:
    """The last `lines` lines written to fd since offset `start`."""
    end = os.lseek(fd, 0, os.SEEK_END)
    begin = max(start, end - TAIL_BYTES)
    if end <= begin:
        return []
    data = os.pread(fd, end - begin, begin).decode(errors="replace")
    return data.splitlines()[-lines:]


class Executor:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.evaluator = Evaluator(task)
        self.output = Output(task)
        self._exiting = 0  # process mode: the last child, which sent its outcome and is exiting

    def run_point(self, sim_id: int, x: tuple[float, ...], tail_lines: int) -> tuple[Any, ...]:
        task = self.task
        sim_dir = os.path.join(task.run_dir, f"sim_{sim_id}") if task.sim_dirs else None
        if sim_dir:
            os.makedirs(sim_dir, exist_ok=True)
            os.chdir(sim_dir)
        fds = self.output.begin(sim_dir)
        marks = self.output.marks()
        started = time.time()
        outcome = self._call(sim_id, x)
        ended = time.time()
        sys.stdout.flush()
        sys.stderr.flush()
        lines = []
        if tail_lines:
            lines = [("stdout", s) for s in tail(1, marks[0], tail_lines)]
            lines += [("stderr", s) for s in tail(2, marks[1], tail_lines)]
        self.output.end(fds)
        if sim_dir:
            os.chdir(task.run_dir)
        # worker mode follows rsopt: any failure there ends the run
        fatal = outcome.status == "failed" and task.mode == "worker"
        # values last, so readers that know only the first nine fields keep working
        return ("result", sim_id, outcome.status, outcome.f, outcome.error, fatal, started, ended, lines, outcome.values)

    def _reap(self) -> None:
        if self._exiting:
            os.waitpid(self._exiting, 0)
            self._exiting = 0

    def _call(self, sim_id: int, x: tuple[float, ...]) -> Outcome:
        if self.task.mode == "process":
            return self._forked(sim_id, x)
        return self.evaluator.evaluate(sim_id, x)  # thread mode: this is already the evaluation thread

    def _forked(self, sim_id: int, x: tuple[float, ...]) -> Outcome:
        self._reap()
        task = self.task
        for ref in (task.function, task.preprocess, task.postprocess, task.objective):
            if ref is not None:
                self.evaluator.loader.precompile(ref[0])
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: evaluate in a clean copy, send the outcome, leave at once
            os.close(read_fd)
            die_with_parent()
            try:
                data = pickle.dumps(self.evaluator.evaluate(sim_id, x))
                sys.stdout.flush()  # before the outcome: the parent reads the output's tail once it has it
                sys.stderr.flush()
                view = memoryview(data)
                while view:
                    view = view[os.write(write_fd, view):]
                os.close(write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        os.close(read_fd)
        if chunks:
            self._exiting = pid  # reaped before the next fork: its exit overlaps with our reply to the daemon
            outcome: Outcome = pickle.loads(b"".join(chunks))
            return outcome
        _, status = os.waitpid(pid, 0)
        from rsoptd.errors import describe_exit

        code = os.waitstatus_to_exitcode(status)
        return Outcome("failed", float("nan"), f"the evaluation {describe_exit(code)} before returning a result")


def open_channel() -> tuple[BinaryIO, BinaryIO, Task]:
    """Take fds 0 and 1 for the daemon's framing (user code gets /dev/null and files instead),
    and read the Task the daemon sends first."""
    die_with_parent()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    task: Task = receive(requests)
    if sys.path and sys.path[0] == os.getcwd():  # -m put our start directory first: a spare's is not the run's
        sys.path[0] = task.run_dir
    os.chdir(task.run_dir)
    return requests, replies, task


def main() -> None:
    requests, replies, task = open_channel()
    executor = Executor(task)
    send(replies, ("ready", os.getpid()))
    if task.mode != "thread":
        serve(executor, requests, replies)
        leave()
    # thread mode: every evaluation runs in this one thread, never in the main thread.  Only this
    # mode imports threading: once imported, every fork pays for its after-fork hooks (about
    # half a millisecond per child in process mode)
    import threading

    thread = threading.Thread(target=serve, args=(executor, requests, replies), name="rsoptd-evaluation", daemon=True)
    thread.start()
    thread.join()
    leave()


def leave() -> None:
    """End of input: leave at once.  The interpreter's teardown (several ms, more with big
    modules loaded) would hold up the run's end.  As in libEnsemble's workers (multiprocessing
    children, which end with os._exit), atexit handlers do not run; output is flushed, C's too."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(0)


def serve(executor: Executor, requests: BinaryIO, replies: BinaryIO) -> None:
    while (message := receive(requests)) is not None:
        _, points, tail_lines = message
        for sim_id, x in points:
            result = executor.run_point(sim_id, x, tail_lines)
            send(replies, result)
            if result[5]:  # fatal: the rest of this batch must not run
                break
        send(replies, ("end",))


if __name__ == "__main__":
    main()
