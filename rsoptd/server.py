"""The daemon: startup, the Unix socket with its peer check, signals, shutdown."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import stat
import struct
import time
from pathlib import Path
from typing import Any

from rsoptd import executors, notify, protocol, retention
from rsoptd.commands import HANDLERS
from rsoptd.errors import RsoptdError
from rsoptd.logs import LogHub, get_logger
from rsoptd.manager import Manager
from rsoptd.pool import SlotPool
from rsoptd.runs import Context
from rsoptd.settings import Settings, reload as reload_settings
from rsoptd.store import Store

log = get_logger()
REQUEST_TIMEOUT = 30.0  # a connection must send its request within this time
PEERCRED = struct.Struct("3i")


class StartupError(Exception):
    pass


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._closed: asyncio.Future[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(protocol.encode(frame))
        await self.writer.drain()

    async def send_line(self, line: str) -> None:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, data: Any) -> None:
        await self.send(protocol.ok(data))

    def closed(self) -> asyncio.Future[None]:
        """Resolves when the client hangs up (it sends nothing after its request); shared, never cancel it."""
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._wait_eof())
        return self._closed

    async def _wait_eof(self) -> None:
        try:
            while await self.reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass


class Daemon:
    def __init__(self, socket_path: Path, state_dir: Path, cores: int, idle_exit: float | None,
                 hub: LogHub, listen_socket: socket.socket | None = None,
                 settings: Settings | None = None) -> None:
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.idle_exit = idle_exit
        self.hub = hub
        self.listen_socket = listen_socket
        self.started = time.monotonic()
        self.ctx: Context
        self.manager: Manager
        self._exit = asyncio.Event()
        self._signals = 0
        self._connections = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._cores = cores
        self._lock_fd: int | None = None
        self.settings = settings or Settings()
        self.notifier = notify.Notifier.from_environment()
        self.retention_timer: asyncio.TimerHandle | None = None

    # -- lifecycle --

    async def main(self) -> int:
        self.startup()
        server = await self._listen()
        log.info("rsoptd ready", socket=str(self.socket_path), state_dir=str(self.state_dir),
                 cores=self._cores, pid=os.getpid())
        self.notifier.ready(self.status_line())
        self.notifier.start_watchdog(self.status_line)
        self._touch()
        try:
            await self._exit.wait()
        finally:
            server.close()
            await self.shutdown()
        return 0

    def startup(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.state_dir / "rsoptd.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(f"another rsoptd is using the state directory {self.state_dir}") from None
        loop = asyncio.get_running_loop()
        store = Store(self.state_dir / "rsoptd.db", loop.call_soon)
        self.ctx = Context(store=store, pool=SlotPool(self._cores), hub=self.hub)
        self.manager = Manager(self.ctx)
        self.manager.load()
        store.on_flush(self._after_flush)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, reload_settings, self)
        retention.schedule(self)

    async def _listen(self) -> asyncio.AbstractServer:
        if self.listen_socket is not None:
            return await asyncio.start_unix_server(self._serve, sock=self.listen_socket, limit=protocol.MAX_REQUEST_BYTES)
        path = self.socket_path
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        elif stat.S_IMODE(path.parent.stat().st_mode) & 0o077:
            log.warning("the socket's directory is open to other users; the peer check still refuses them",
                        directory=str(path.parent))
        self._remove_stale_socket(path)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            return await asyncio.start_unix_server(self._serve, path=str(path), limit=protocol.MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)

    @staticmethod
    def _remove_stale_socket(path: Path) -> None:
        if not path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody answers: a dead daemon's leftover
            return
        finally:
            probe.close()
        raise StartupError(f"another rsoptd is already listening on {path}")

    async def shutdown(self) -> None:
        log.info("rsoptd shutting down")
        self.notifier.stopping()
        if self.retention_timer is not None:
            self.retention_timer.cancel()
        await self.manager.shutdown()
        await executors.kill_all()
        self.ctx.store.close()
        if self.listen_socket is None:
            try:
                self.socket_path.unlink()
            except FileNotFoundError:
                pass
        log.info("rsoptd stopped")

    def request_exit(self, reason: str) -> None:
        if not self._exit.is_set():
            log.info("exit requested", reason=reason)
            self._exit.set()

    def status_line(self) -> str:
        """systemd's STATUS=, shown by `systemctl --user status rsoptd`."""
        active = sum(run.active for run in self.manager.runs.values())
        pool = self.ctx.pool
        return f"{active} runs active of {len(self.manager.runs)}; {pool.busy}/{pool.total} slots busy"

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self.request_exit(signal.Signals(signum).name)
            return
        executors.kill_all_now()  # a second signal: leave at once, taking every evaluation along
        os._exit(128 + signum)

    # -- idleness: zero CPU while idle; an autostarted daemon leaves after idle_exit --

    def _touch(self) -> None:
        if self.idle_exit is None:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        busy = self._connections or any(run.active for run in self.manager.runs.values())
        if not busy:
            self._idle_timer = asyncio.get_running_loop().call_later(self.idle_exit, self.request_exit, "idle")

    def _after_flush(self) -> None:
        for run in self.manager.runs.values():
            if run.active:
                run.notify()

    # -- connections --

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        self._connections += 1
        self._touch()
        try:
            if not self._peer_allowed(writer):
                await conn.send(protocol.error(protocol.BAD_REQUEST, "connections are accepted from the daemon's own user only"))
                return
            await self._handle(conn)
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            self._connections -= 1
            writer.close()
            self._touch()

    async def _handle(self, conn: Connection) -> None:
        try:
            line = await asyncio.wait_for(conn.reader.readline(), REQUEST_TIMEOUT)
            request = protocol.decode(line)
        except TimeoutError:
            return
        except ValueError as exc:  # oversized (LimitOverrunError is a ValueError) or malformed
            await conn.send(protocol.error(protocol.BAD_REQUEST, f"malformed request: {_short(exc)}"))
            return
        handler = HANDLERS.get(request.get("op"))  # type: ignore[arg-type]
        if handler is None:
            await conn.send(protocol.error(protocol.BAD_REQUEST, f"unknown op {request.get('op')!r}; known: {', '.join(sorted(HANDLERS))}"))
            return
        try:
            await handler(self, request, conn)
        except RsoptdError as exc:
            await conn.send(protocol.error(exc.code, str(exc)))
        except (ConnectionError, BrokenPipeError):
            raise
        except Exception as exc:
            log.exception("request failed", op=request.get("op"))
            await conn.send(protocol.error(protocol.INTERNAL, f"internal error: {exc!r}"))

    @staticmethod
    def _peer_allowed(writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
        except (OSError, AttributeError):
            return False
        pid, uid, gid = PEERCRED.unpack(creds)
        if uid != os.getuid():
            log.warning("refused a connection from another user", peer_uid=uid, peer_pid=pid)
            return False
        return True


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:197] + "..."
