"""Talking to rsoptd over its Unix socket, starting it when nobody answers."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
TYPE_CHECKING = False  # typing costs ~2 ms of every rsoptctl start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Iterator

from rsoptd import paths, protocol

AUTOSTART_IDLE_EXIT = 600  # seconds an autostarted daemon stays up with nothing to do
AUTOSTART_WAIT = 15.0


class Unreachable(Exception):
    pass


class RequestFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class Connection:
    """One request and its replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = sock.makefile("rb")

    def close(self) -> None:
        self.stream.close()
        self.sock.close()

    def send(self, request: dict[str, Any]) -> None:
        try:
            self.sock.sendall(protocol.encode(request))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon refused us before reading; its reply says why

    def frame(self) -> dict[str, Any]:
        line = self.stream.readline(protocol.MAX_REPLY_BYTES)
        if not line:
            raise Unreachable("the daemon closed the connection")
        return json.loads(line)

    def reply(self) -> Any:
        message = self.frame()
        if not message.get("ok"):
            error = message.get("error") or {}
            raise RequestFailed(error.get("code", "internal"), error.get("message", "unknown error"))
        return message.get("data")

    def frames(self) -> Iterator[dict[str, Any]]:
        while True:
            line = self.stream.readline(protocol.MAX_REPLY_BYTES)
            if not line:
                return
            yield json.loads(line)

    def read_bytes(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            chunk = self.stream.read(min(left, 1 << 20))
            if not chunk:
                raise Unreachable("the daemon closed the connection mid-transfer")
            left -= len(chunk)
            yield chunk


def connect(socket_path: Path) -> Connection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError as exc:
        sock.close()
        raise Unreachable(f"no rsoptd answers at {socket_path} ({exc.strerror or exc})") from None
    return Connection(sock)


def open_connection(socket_path: Path, autostart: bool) -> Connection:
    try:
        return connect(socket_path)
    except Unreachable:
        if not autostart:
            raise
    start_daemon(socket_path)
    return connect(socket_path)


def start_daemon(socket_path: Path) -> None:
    """Start rsoptd in the background (it exits after a quiet period) and wait until it answers."""
    import subprocess  # here, not at the top: it costs every other command ~3 ms of start-up

    state_dir = paths.default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = state_dir / "rsoptd.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rsoptd", "--socket", str(socket_path), "--idle-exit", str(AUTOSTART_IDLE_EXIT)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + AUTOSTART_WAIT
    while time.monotonic() < deadline:
        try:
            connect(socket_path).close()
            return
        except Unreachable:
            pass
        if process.poll() is not None:
            try:  # another client may have started one at the same moment
                connect(socket_path).close()
                return
            except Unreachable:
                raise Unreachable(f"rsoptd did not start (exit {process.returncode}); see {log_path}") from None
        time.sleep(0.02)
    raise Unreachable(f"rsoptd did not answer within {AUTOSTART_WAIT:.0f} s; see {log_path}")


def request(socket_path: Path, message: dict[str, Any], autostart: bool = True) -> Any:
    conn = open_connection(socket_path, autostart)
    try:
        conn.send(message)
        return conn.reply()
    finally:
        conn.close()


def default_socket() -> Path:
    return paths.default_socket()


def environment() -> dict[str, str]:
    return dict(os.environ)
