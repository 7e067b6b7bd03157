"""The daemon's handle on one executor process (see rsoptd.executor)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys
from typing import Any

from rsoptd.errors import ExecutorDied
from rsoptd.evaluate import Task
from rsoptd.executor import HEADER, worker_log

START_TIMEOUT = 60.0  # seconds for a new executor to import what it needs
CLOSE_GRACE = 2.0
EXECUTOR = "rsoptd.executor"
SPARE_CWD = "/"  # spares wait outside any run directory; the Task moves them into theirs
LIVE: set[Any] = set()  # every executor (or MPI lane, see rsoptd.mpi) not yet reaped, for shutdown


async def kill_all() -> None:
    await asyncio.gather(*(executor.kill() for executor in list(LIVE)))


def kill_all_now() -> None:
    for executor in list(LIVE):
        executor.signal_group(signal.SIGKILL)


class ExecutorProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid

    @classmethod
    async def start(cls, task: Task, env: dict[str, str], module: str = "rsoptd.executor") -> ExecutorProcess:
        if module == EXECUTOR and (spare := SPARES.take(env)) is not None:
            try:
                return await spare._handshake(task)
            except ExecutorDied:
                pass  # a spare that died waiting: start one as before
        stderr = os.open(worker_log(task, "stderr"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            executor = await cls._spawn(env, task.run_dir, stderr, module)
        finally:
            os.close(stderr)
        return await executor._handshake(task)

    @classmethod
    async def _spawn(cls, env: dict[str, str], cwd: str, stderr: int, module: str = EXECUTOR) -> ExecutorProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            env=env, cwd=cwd, start_new_session=True,  # its own process group
        )
        executor = cls(process)
        LIVE.add(executor)
        return executor

    async def _handshake(self, task: Task) -> ExecutorProcess:
        """Send the Task; the executor answers once it is set up for it."""
        executor, process = self, self.process
        try:
            await executor.send(task)
            reply = await asyncio.wait_for(executor.receive(), START_TIMEOUT)
        except (ExecutorDied, TimeoutError) as exc:
            await executor.kill()
            raise ExecutorDied(process.returncode, f"the executor did not start ({exc}); see {worker_log(task, 'stderr')}") from None
        if reply[0] != "ready":
            await executor.kill()
            raise ExecutorDied(None, f"unexpected first message {reply[0]!r}")
        return executor

    async def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(HEADER.pack(len(data)) + data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise ExecutorDied(await self.process.wait()) from None

    async def receive(self) -> Any:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
            return pickle.loads(await stdout.readexactly(size))
        except asyncio.IncompleteReadError:
            raise ExecutorDied(await self.process.wait()) from None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    async def kill(self) -> None:
        """End the executor and everything it started (its process group)."""
        self.signal_group(signal.SIGKILL)
        await self.process.wait()
        LIVE.discard(self)

    async def close(self) -> None:
        """Let the executor leave on end of input; kill it if it lingers."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), CLOSE_GRACE)
        except TimeoutError:
            pass
        self.signal_group(signal.SIGKILL)  # children it left behind go too
        await self.process.wait()
        LIVE.discard(self)


class Spares:
    """Executors started ahead of need, so that a run's first evaluation starts in a few
    milliseconds rather than after an interpreter's start-up (about 40 ms).

    A spare is a bare ``python -m rsoptd.executor`` that has imported nothing of the user's
    and waits for its Task; it is used only by a run whose environment is exactly the one it
    was started with (the last run's: the same shell submits with the same environment), so a
    run's executors are what they would have been.  Up to ``count`` are kept, for one
    environment at a time; an idle daemon keeps them (about 15 MB each, no CPU).
    """

    def __init__(self) -> None:
        self.env: dict[str, str] | None = None
        self.idle: list[ExecutorProcess] = []
        self.count = 0
        self._filling: asyncio.Task[None] | None = None

    def take(self, env: dict[str, str]) -> ExecutorProcess | None:
        while env == self.env and self.idle:
            spare = self.idle.pop()
            if spare.process.returncode is None:
                return spare
        return None

    def keep(self, env: dict[str, str], count: int) -> None:
        """Have `count` spares for `env` (started in the background); others are ended."""
        if env != self.env:
            self.discard()
            self.env = dict(env)
        self.count = count
        if self._filling is None or self._filling.done():
            self._filling = asyncio.get_running_loop().create_task(self._fill(), name="spare-executors")

    def discard(self) -> None:
        idle, self.idle = self.idle, []
        for spare in idle:
            asyncio.get_running_loop().create_task(spare.kill())

    async def _fill(self) -> None:
        while self.env is not None and len(self.idle) < self.count:
            env = self.env
            try:
                spare = await ExecutorProcess._spawn(env, SPARE_CWD, asyncio.subprocess.DEVNULL)
            except OSError:
                return
            if env is self.env:
                self.idle.append(spare)
            else:
                await spare.kill()


SPARES = Spares()
