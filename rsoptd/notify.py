"""systemd's side channels in plain stdlib: sd_notify and socket activation.

The notify protocol is one datagram of ``KEY=value`` lines to the AF_UNIX
socket named by ``$NOTIFY_SOCKET``; socket activation hands the listening
socket over as fd 3 with ``$LISTEN_FDS`` / ``$LISTEN_PID``.  Both are stable,
documented interfaces (sd_notify(3), sd_listen_fds(3)), small enough that a
library would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

LISTEN_FDS_START = 3
LISTEN_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class ActivationError(Exception):
    pass


def listen_socket() -> socket.socket | None:
    """The socket systemd passed us, or None when we were not socket-activated.

    The variables are removed from the environment, as sd_listen_fds(1) does,
    so nothing the daemon starts mistakes them for its own.
    """
    count, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    for name in LISTEN_VARIABLES:
        os.environ.pop(name, None)
    if not count or pid != str(os.getpid()):
        return None  # absent, or meant for the process that started us
    if count != "1":
        raise ActivationError(f"expected one socket from systemd (LISTEN_FDS=1), got LISTEN_FDS={count}")
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as exc:
        raise ActivationError(f"fd {LISTEN_FDS_START} from systemd is not a socket: {exc.strerror}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ActivationError("the socket from systemd must be a Unix stream socket (ListenStream=/path)")
    sock.set_inheritable(False)
    return sock


class Notifier:
    """READY / STATUS / WATCHDOG / STOPPING to systemd; does nothing without $NOTIFY_SOCKET."""

    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self.address = address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None  # ping at half the limit
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._status = ""
        self.failed = False

    @classmethod
    def from_environment(cls) -> Notifier:
        address = os.environ.pop("NOTIFY_SOCKET", None) or None
        usec, pid = os.environ.pop("WATCHDOG_USEC", None), os.environ.pop("WATCHDOG_PID", None)
        watchdog = None
        if usec and (pid is None or pid == str(os.getpid())):
            try:
                watchdog = int(usec) or None
            except ValueError:
                watchdog = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> None:
        if self.address is None or self.failed:
            return
        try:
            if self._sock is None:
                address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.connect(address)
            self._sock.send("\n".join(lines).encode())
        except OSError:
            self.failed = True  # systemd is gone or never listened: stop trying, never crash for it

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.send(f"STATUS={status}")

    def start_watchdog(self, status: Callable[[], str]) -> None:
        """Ping from the event loop itself, so a loop that stops turning stops the pings."""
        if self.watchdog_interval is None or self.address is None:
            return
        loop = asyncio.get_running_loop()
        interval = self.watchdog_interval

        def tick() -> None:
            text = status()
            if text != self._status:
                self._status = text
                self.send("WATCHDOG=1", f"STATUS={text}")
            else:
                self.send("WATCHDOG=1")
            self._timer = loop.call_later(interval, tick)

        tick()

    def stopping(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
