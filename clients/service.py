"""`rsoptctl service install|uninstall`: rsoptd as a systemd user service (standard library only).

The units are written to ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``)
with the absolute path of the rsoptd installed next to this Python.  The
repository's ``systemd/`` holds the same units with ``%h/.local/bin/rsoptd``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rsoptd import paths
from rsoptctl.connection import RequestFailed, Unreachable, request

UNITS = ("rsoptd.socket", "rsoptd.service")
REPOSITORY_COMMAND = "%h/.local/bin/rsoptd"

SOCKET_UNIT = """\
[Unit]
Description=rsoptd socket: starts the rsoptd user service on first use

[Socket]
ListenStream=%t/rsoptd/rsoptd.sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

SERVICE_UNIT = """\
[Unit]
Description=rsoptd: rsopt-style scans and optimisations of Python functions
Requires=rsoptd.socket
After=rsoptd.socket

[Service]
Type=notify
ExecStart={command}
ExecReload=kill -HUP $MAINPID
# rsoptd pings the watchdog from its event loop every WatchdogSec/2: a stuck loop is restarted.
WatchdogSec=60
Restart=on-failure
RestartSec=2
# Exit status 2 is a bad config.toml: restarting would not fix it.
RestartPreventExitStatus=2
# Stopping: SIGTERM to rsoptd alone, which interrupts its runs and kills every evaluation's
# process group; systemd then SIGKILLs whatever is left in the unit's cgroup (processes that
# left their group, MPI ranks), and SIGKILLs everything once TimeoutStopSec has passed.
KillMode=mixed
TimeoutStopSec=30
# An evaluation killed by the kernel's OOM killer fails alone; the daemon keeps serving.
OOMPolicy=continue
# Hardening that keeps MPI and users' functions working: no privilege gain, no realtime
# scheduling, no set-uid files.  Left out on purpose: PrivateTmp (functions share /tmp with
# their user), PrivateNetwork (MPI launchers talk over loopback TCP), MemoryDenyWriteExecute
# (JIT compilers such as numba), ProtectHome (runs write there).
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes

[Install]
WantedBy=default.target
Also=rsoptd.socket
"""


class ServiceError(Exception):
    pass


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "systemd" / "user"


def rsoptd_command() -> str:
    """The rsoptd installed with this Python (the entry point beside sys.executable), quoted for a unit."""
    script = Path(sys.executable).parent / "rsoptd"  # not resolved: a venv's python is a symlink
    words = [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "rsoptd"]
    return " ".join(_quote(word) for word in words)


def _quote(word: str) -> str:
    word = word.replace("%", "%%")  # systemd specifiers
    if any(c.isspace() or c in "\"'\\;$" for c in word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'
    return word


def units(command: str) -> dict[str, str]:
    return {"rsoptd.socket": SOCKET_UNIT, "rsoptd.service": SERVICE_UNIT.format(command=command)}


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["systemctl", "--user", *args], check=False, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ServiceError("systemctl is not installed: this machine has no systemd") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"systemctl --user {' '.join(args)} did not finish within 60 s") from None


def user_manager_problem() -> str | None:
    """Why `systemctl --user` cannot be used here, or None when a user manager answers."""
    try:
        result = systemctl("show-environment")
    except ServiceError as exc:
        return str(exc)
    if result.returncode == 0:
        return None
    detail = (result.stderr or result.stdout).strip().splitlines()
    return (f"no systemd user instance answers (systemctl --user: {detail[-1] if detail else result.returncode}); "
            "log in to a desktop or ssh session with systemd, or run `loginctl enable-linger $USER`")


def run_steps(steps: list[tuple[str, ...]]) -> None:
    problem = user_manager_problem()
    if problem:
        raise ServiceError(problem)
    for step in steps:
        result = systemctl(*step)
        if result.returncode != 0:
            raise ServiceError(f"systemctl --user {' '.join(step)} failed: {(result.stderr or result.stdout).strip()}")
        print(f"systemctl --user {' '.join(step)}", file=sys.stderr)


def refuse_if_a_daemon_runs_outside_systemd() -> None:
    """systemd would take over the socket path while that daemon holds the state directory."""
    path = paths.runtime_dir() / paths.SOCKET_NAME  # where %t/rsoptd/rsoptd.sock is
    try:
        ping = request(path, {"op": "ping"}, autostart=False)
    except (Unreachable, RequestFailed, OSError, ValueError):
        return
    if not ping.get("socket_activated"):
        raise ServiceError(
            f"an rsoptd started outside systemd (pid {ping.get('pid')}) is serving at {path}; stop it first with "
            "`rsoptctl shutdown` (its active runs become interrupted; `rsoptctl resume RUN` continues them), "
            "then run `rsoptctl service install --now` again")


def install(now: bool) -> int:
    directory = unit_dir()
    directory.mkdir(parents=True, exist_ok=True)
    command = rsoptd_command()
    for name, text in units(command).items():
        path = directory / name
        old = path.read_text() if path.exists() else None
        if old != text:
            path.write_text(text)
        print(f"{'unchanged' if old == text else 'updated' if old else 'wrote'} {path}", file=sys.stderr)
    print(f"ExecStart={command}", file=sys.stderr)
    if not now:
        print("next: systemctl --user daemon-reload && systemctl --user enable --now rsoptd.socket", file=sys.stderr)
        return 0
    try:
        refuse_if_a_daemon_runs_outside_systemd()
        run_steps([("daemon-reload",), ("enable", "--now", "rsoptd.socket")])
    except ServiceError as exc:
        print(f"rsoptctl: the units are written but not enabled: {exc}", file=sys.stderr)
        return 1
    print("rsoptd.socket is listening; the service starts on first use", file=sys.stderr)
    return 0


def uninstall() -> int:
    directory = unit_dir()
    present = [directory / name for name in UNITS if (directory / name).exists()]
    problem = user_manager_problem()
    if present and problem is None:
        run_steps([("disable", "--now", *UNITS)])
    # the links `enable` made (disable removes them too; without a user manager we do)
    links = [link for name in UNITS for link in directory.glob(f"*.wants/{name}") if link.is_symlink()]
    for path in present + links:
        path.unlink()
        print(f"removed {path}", file=sys.stderr)
    if not present:
        print(f"no rsoptd units in {directory}", file=sys.stderr)
    if problem is None:
        run_steps([("daemon-reload",)])
    elif present:
        print(f"rsoptctl: nothing to stop: {problem}", file=sys.stderr)
    return 0


def main(action: str, now: bool = False) -> int:
    try:
        return install(now) if action == "install" else uninstall()
    except (ServiceError, OSError) as exc:
        print(f"rsoptctl: {exc}", file=sys.stderr)
        return 1
