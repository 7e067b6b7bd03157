"""The socket: permissions, peer check, malformed and oversized frames, slow clients."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest


def _exchange(path, payload: bytes, shutdown_write: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        try:
            sock.sendall(payload)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _reply(data: bytes) -> dict:
    return json.loads(data.splitlines()[0])


def test_socket_is_0600_in_a_0700_directory(daemon):
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("payload,expected", [
    (b"this is not json\n", "malformed request"),
    (b"[1, 2, 3]\n", "must be a JSON object"),
    (b'{"op": "launch-missiles"}\n', "unknown op"),
    (b'{"op": "status", "run": 999}\n', "no run 999"),
    (b'{"op": "submit", "config_path": 5}\n', "wrong type"),
    (b"\xff\xfe\x00garbage\n", "malformed request"),
])
def test_malformed_requests_get_an_error_reply(daemon, payload, expected):
    reply = _reply(_exchange(daemon.socket, payload))
    assert reply["ok"] is False and expected in reply["error"]["message"]
    assert daemon.ctl("ping").returncode == 0


def test_an_oversized_frame_is_refused_without_a_crash(daemon):
    data = _exchange(daemon.socket, b'{"op": "ping", "pad": "' + b"x" * (17 * 1024 * 1024) + b'"}\n')
    if data:
        assert _reply(data)["ok"] is False
    assert daemon.ctl("ping").returncode == 0


def test_a_client_that_never_sends_does_not_block_others(daemon):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(daemon.socket))
        idle.sendall(b'{"op": "pi')  # half a frame, then silence
        started = time.monotonic()
        assert daemon.ctl("ping").returncode == 0
        assert time.monotonic() - started < 5


def test_a_vanished_log_follower_does_not_block_the_daemon(daemon, project):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.socket))
        sock.sendall(b'{"op": "logs", "follow": true}\n')
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        # never read: the daemon must not wait for this reader
        project.function("def f(x, y=0):\n    print('hello ' * 1000)\n    return x\n")
        config = project.config("f", parameters={"x": {"min": 0, "max": 1, "start": 0, "samples": 300}})
        status = daemon.run(config)
        assert status["state"] == "completed" and status["done"] == 300


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as a second user; the check is SO_PEERCRED uid == daemon uid")
def test_a_peer_of_another_user_is_refused(daemon):
    # open the filesystem permissions so that only the peer-credential check stands in the way
    os.chmod(daemon.home, 0o755)
    os.chmod(daemon.socket.parent, 0o777)
    os.chmod(daemon.socket, 0o777)
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "try:\n"
        "    s.sendall(b'{\"op\": \"ping\"}\\n')\n"
        "except BrokenPipeError:\n"
        "    pass  # the refusal may come before the request is read\n"
        "print(s.recv(4096).decode())\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(daemon.socket)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["ok"] is False and "own user only" in reply["error"]["message"]
    log = daemon.log_path.read_text()
    assert "refused a connection from another user" in log and '"peer_uid": 65534' in log
