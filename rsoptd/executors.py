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
from rsoptd.executor import HEADER

START_TIMEOUT = 60.0  # seconds for a new executor to import what it needs
CLOSE_GRACE = 2.0
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
        stderr = os.open(os.path.join(task.run_dir, f"worker-{task.worker}.stderr.log"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
                env=env, cwd=task.run_dir, start_new_session=True,  # its own process group
            )
        finally:
            os.close(stderr)
        executor = cls(process)
        LIVE.add(executor)
        try:
            await executor.send(task)
            reply = await asyncio.wait_for(executor.receive(), START_TIMEOUT)
        except (ExecutorDied, TimeoutError) as exc:
            await executor.kill()
            raise ExecutorDied(process.returncode, f"the executor did not start ({exc}); see worker-{task.worker}.stderr.log") from None
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
