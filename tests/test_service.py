"""rsoptd as a workstation service, with the real tools: systemd-analyze, systemd-socket-activate,
a real NOTIFY_SOCKET, SIGHUP, config.toml, journal-style stderr, rsoptctl service/info/rm/prune."""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RSOPTCTL, RSOPTD

REPO = Path(__file__).resolve().parent.parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
needs_activate = pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")

FUNCTIONS = """
import time

def quadratic(x, y):
    return (x - 0.3) ** 2 + y ** 2

def slow(x, y):
    time.sleep(30)
    return x
"""


# -- helpers ---------------------------------------------------------------


def base_env(tmp: Path) -> dict[str, str]:
    """A user whose config, state, runtime and systemd dirs are all under `tmp`."""
    env = dict(os.environ)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM"):
        env.pop(name, None)
    runtime = tmp / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"),
               XDG_RUNTIME_DIR=str(runtime), RSOPTD_SOCKET=str(tmp / "sock" / "rsoptd.sock"))
    return env


def ctl(env: dict[str, str], *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([RSOPTCTL, "--no-autostart", *args], check=False, capture_output=True, text=True, env=env,
                            timeout=120, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"rsoptctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def ctl_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(ctl(env, *args, "--json").stdout)


def write_config(tmp: Path, text: str) -> Path:
    path = tmp / "config" / "rsoptd" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Process:
    """A daemon started by a test, its stderr in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        self.env = env
        self.stderr_path = stderr
        with open(stderr, "ab") as err:
            self.popen = subprocess.Popen(argv, stdout=err, stderr=err, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = ctl(self.env, "ping", "--json", check=False)
            if result.returncode == 0:
                return json.loads(result.stdout)
            if self.popen.poll() is not None:
                raise AssertionError(f"rsoptd exited with {self.popen.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"rsoptd did not answer:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(20)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


@pytest.fixture
def processes() -> Any:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def start(processes: list[Process], tmp: Path, *args: str, env: dict[str, str] | None = None,
          argv: list[str] | None = None) -> Process:
    env = env or base_env(tmp)
    process = Process(argv or [RSOPTD, "--state-dir", str(tmp / "statedir"), *args], env, tmp / "rsoptd.stderr")
    processes.append(process)
    return process


def log_events(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ctl(env, "logs", "--json", "-n", "0").stdout.splitlines()]


def wait_for_event(env: dict[str, str], name: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [event for event in log_events(env) if event.get("event") == name]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {name!r} event in {log_events(env)}")


def verify(*units: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, "--user", "verify", *map(str, units)], check=False, capture_output=True, text=True,
                          env=env, timeout=60)


def unit_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def user_manager_problem() -> str | None:
    try:
        result = subprocess.run(["systemctl", "--user", "show-environment"], check=False, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return "systemctl is not installed"
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip() or f"exit {result.returncode}"


# -- the units ---------------------------------------------------------------


@needs_analyze
def test_repository_units_pass_systemd_analyze_verify(short_tmp: Path) -> None:
    env = base_env(short_tmp)
    bin_dir = short_tmp / "home" / ".local" / "bin"  # ExecStart=%h/.local/bin/rsoptd, as pip --user installs it
    bin_dir.mkdir(parents=True)
    (bin_dir / "rsoptd").symlink_to(RSOPTD)
    result = verify(REPO / "systemd" / "rsoptd.socket", REPO / "systemd" / "rsoptd.service", env=env)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result

    service = unit_settings((REPO / "systemd" / "rsoptd.service").read_text())
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert service["KillMode"] == "mixed" and int(service["WatchdogSec"]) > 0 and int(service["TimeoutStopSec"]) > 0
    assert service["ExecStart"] == "%h/.local/bin/rsoptd"
    assert unit_settings((REPO / "systemd" / "rsoptd.socket").read_text())["ListenStream"] == "%t/rsoptd/rsoptd.sock"


@needs_analyze
def test_verify_rejects_a_service_whose_rsoptd_is_missing(short_tmp: Path) -> None:
    """The check above means something: a unit pointing at no rsoptd fails it."""
    result = verify(REPO / "systemd" / "rsoptd.socket", REPO / "systemd" / "rsoptd.service", env=base_env(short_tmp))
    assert result.returncode != 0 and ".local/bin/rsoptd" in result.stderr


@needs_analyze
def test_service_install_writes_verified_units_and_uninstall_removes_them(short_tmp: Path) -> None:
    env = base_env(short_tmp)
    result = ctl(env, "service", "install")
    unit_dir = short_tmp / "config" / "systemd" / "user"
    socket_unit, service_unit = unit_dir / "rsoptd.socket", unit_dir / "rsoptd.service"
    assert socket_unit.exists() and service_unit.exists(), result.stderr
    assert "systemctl --user daemon-reload && systemctl --user enable --now rsoptd.socket" in result.stderr
    # the rsoptd beside the client's Python, by absolute path
    assert unit_settings(service_unit.read_text())["ExecStart"] == RSOPTD
    checked = verify(socket_unit, service_unit, env=env)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked
    # the same units as the repository's, but for ExecStart
    assert socket_unit.read_text() == (REPO / "systemd" / "rsoptd.socket").read_text()
    assert service_unit.read_text() == (REPO / "systemd" / "rsoptd.service").read_text().replace(
        "ExecStart=%h/.local/bin/rsoptd", f"ExecStart={RSOPTD}")
    assert "unchanged" in ctl(env, "service", "install").stderr

    # --now needs a user manager; here XDG_RUNTIME_DIR is a fresh directory, so none answers
    now = ctl(env, "service", "install", "--now", check=False)
    assert now.returncode == 1
    assert "the units are written but not enabled" in now.stderr and "systemd user instance" in now.stderr

    wants = unit_dir / "sockets.target.wants"  # what `systemctl --user enable` leaves behind
    wants.mkdir()
    (wants / "rsoptd.socket").symlink_to(socket_unit)
    gone = ctl(env, "service", "uninstall")
    assert not socket_unit.exists() and not service_unit.exists() and not (wants / "rsoptd.socket").is_symlink()
    assert "nothing to stop" in gone.stderr
    assert "no rsoptd units" in ctl(env, "service", "uninstall").stderr


def test_install_now_refuses_while_a_daemon_runs_outside_systemd(short_tmp: Path, processes: list[Process]) -> None:
    """systemd would take the socket path over while that daemon keeps the state directory locked."""
    env = base_env(short_tmp)
    env["RSOPTD_SOCKET"] = str(short_tmp / "run" / "rsoptd" / "rsoptd.sock")  # where %t/rsoptd/rsoptd.sock is
    process = start(processes, short_tmp, env=env)
    pid = process.wait_ready()["pid"]
    result = ctl(env, "service", "install", "--now", check=False)
    assert result.returncode == 1
    assert f"an rsoptd started outside systemd (pid {pid})" in result.stderr and "rsoptctl shutdown" in result.stderr
    assert process.popen.poll() is None  # left alone


@pytest.mark.skipif(os.environ.get("RSOPTD_TEST_USER_SYSTEMD") != "1",
                    reason="installs into the real ~/.config/systemd/user; set RSOPTD_TEST_USER_SYSTEMD=1")
@pytest.mark.skipif(user_manager_problem() is not None,
                    reason=f"no systemd user instance on this machine ({user_manager_problem()}); "
                           "a container or CI job without a login session has none")
def test_installed_service_under_the_real_user_manager() -> None:
    env = dict(os.environ)
    env.pop("RSOPTD_SOCKET", None)
    assert ctl(env, "service", "install", "--now").returncode == 0
    try:
        assert ctl_json(env, "ping")["socket_activated"] is True  # the first connection starts the service
        show = subprocess.run(["systemctl", "--user", "show", "rsoptd.service", "-p", "ActiveState", "-p", "StatusText"],
                              capture_output=True, text=True, check=True).stdout
        assert "ActiveState=active" in show and "slots busy" in show
        subprocess.run(["systemctl", "--user", "reload", "rsoptd.service"], check=True)
        subprocess.run(["systemctl", "--user", "stop", "rsoptd.service"], check=True)
    finally:
        ctl(env, "service", "uninstall")


# -- socket activation ----------------------------------------------------------


@needs_activate
def test_socket_activated_daemon_answers_ping_and_runs_a_scan(short_tmp: Path, project: Any, processes: list[Process]) -> None:
    env = base_env(short_tmp)
    sock = Path(env["RSOPTD_SOCKET"])
    sock.parent.mkdir(mode=0o700)
    passed = [arg for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR") for arg in ("-E", name)]
    assert SOCKET_ACTIVATE is not None
    process = start(processes, short_tmp, env=env, argv=[
        SOCKET_ACTIVATE, "-l", str(sock), *passed, RSOPTD, "--state-dir", str(short_tmp / "statedir"), "--cores", "2"])
    ping = process.wait_ready()
    assert ping["socket_activated"] is True and ping["socket"] == str(sock)
    assert ping["pid"] == process.popen.pid  # systemd-socket-activate execs rsoptd in its own place

    project.function(FUNCTIONS)
    config = project.config("quadratic")
    done = json.loads(ctl(env, "submit", str(config), "--wait", "--json", cwd=project.root).stdout)
    assert (done["state"], done["done"], done["failed"]) == ("completed", 6, 0)
    assert len(json.loads(ctl(env, "results", str(done["id"]), "--format", "json").stdout)) == 6

    assert process.stop() == 0
    assert sock.exists()  # the socket is systemd's: the daemon leaves it for the next activation
    assert '"rsoptd stopped"' in process.stderr()


@needs_activate
@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")
def test_socket_activated_daemon_still_refuses_other_users(short_tmp: Path, processes: list[Process]) -> None:
    env = base_env(short_tmp)
    sock = Path(env["RSOPTD_SOCKET"])
    sock.parent.mkdir()
    for path in (short_tmp, sock.parent):
        path.chmod(0o755)
    assert SOCKET_ACTIVATE is not None
    process = start(processes, short_tmp, env=env, argv=[
        SOCKET_ACTIVATE, "-l", str(sock), "-E", "XDG_CONFIG_HOME", RSOPTD, "--state-dir", str(short_tmp / "statedir")])
    process.wait_ready()
    sock.chmod(0o777)  # let the file permissions pass, so only the peer check stands in the way
    # the daemon answers a refused peer at once, before any request
    probe = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.makefile().readline())"
    result = subprocess.run(["/usr/bin/python3", "-c", probe, str(sock)], check=False, capture_output=True, text=True,
                            user=65534, group=65534, timeout=30, cwd="/", env={"PATH": os.defpath})
    assert result.returncode == 0, result
    reply = json.loads(result.stdout)
    assert reply["ok"] is False and "own user only" in reply["error"]["message"], result
    assert "refused a connection from another user" in process.stderr()


# -- sd_notify -----------------------------------------------------------------------


def notify_socket(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(10)
    return listener


def receive(listener: socket.socket) -> tuple[float, dict[str, str]]:
    data = listener.recv(4096).decode()
    return time.monotonic(), dict(line.split("=", 1) for line in data.splitlines())


def test_notify_socket_receives_ready_watchdog_and_stopping(short_tmp: Path, processes: list[Process]) -> None:
    listener = notify_socket(short_tmp / "notify")
    env = base_env(short_tmp)
    env.update(NOTIFY_SOCKET=str(short_tmp / "notify"), WATCHDOG_USEC="200000")
    # WATCHDOG_PID must be rsoptd's own pid: the shell exports its pid and execs rsoptd in its place
    process = start(processes, short_tmp, env=env, argv=[
        "/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", RSOPTD, "--state-dir", str(short_tmp / "statedir")])
    _, ready = receive(listener)
    assert ready["READY"] == "1" and ready["MAINPID"] == str(process.popen.pid)
    assert re.fullmatch(r"0 runs active of 0; 0/\d+ slots busy", ready["STATUS"]), ready

    pings = []
    while len(pings) < 8:
        when, message = receive(listener)
        assert message.get("WATCHDOG") == "1", message
        pings.append(when)
    intervals = [b - a for a, b in itertools.pairwise(pings)]
    assert 0.05 < statistics.median(intervals) < 0.2, intervals  # half of WATCHDOG_USEC, from the loop's timer
    assert process.wait_ready()["watchdog_interval"] == pytest.approx(0.1)

    process.popen.send_signal(signal.SIGTERM)
    while "STOPPING" not in (message := receive(listener)[1]):
        assert message.get("WATCHDOG") == "1" or "STATUS" in message, message
    assert message["STOPPING"] == "1"
    assert process.popen.wait(20) == 0
    listener.close()


def test_watchdog_meant_for_another_process_is_not_pinged(short_tmp: Path, processes: list[Process]) -> None:
    listener = notify_socket(short_tmp / "notify")
    env = base_env(short_tmp)
    env.update(NOTIFY_SOCKET=str(short_tmp / "notify"), WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    process = start(processes, short_tmp, env=env)
    assert receive(listener)[1]["READY"] == "1"
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):
        receive(listener)
    assert process.wait_ready()["watchdog_interval"] is None
    listener.close()


# -- config.toml and SIGHUP --------------------------------------------------------------


def test_sighup_applies_log_level_and_cores_and_reports_what_needs_a_restart(
        short_tmp: Path, processes: list[Process]) -> None:
    write_config(short_tmp, 'log_level = "warning"\ncores = 2\n')
    process = start(processes, short_tmp)
    env = process.env
    ping = process.wait_ready()
    assert (ping["cores"], ping["log_level"], ping["config_found"]) == (2, "warning", True)
    assert not [e for e in log_events(env) if e["level"] == "info"]  # 'rsoptd ready' was below the level

    write_config(short_tmp, f'log_level = "info"\ncores = 1\nsocket = "{short_tmp}/elsewhere.sock"\n')
    process.popen.send_signal(signal.SIGHUP)
    reloaded = wait_for_event(env, "config reloaded")
    assert reloaded["applied"] == {"log_level": "info", "cores": 1}
    assert reloaded["not_applied"] == {"socket": f"{short_tmp}/elsewhere.sock takes effect at the next restart"}
    ping = ctl_json(env, "ping")
    assert (ping["cores"], ping["log_level"], ping["socket"]) == (1, "info", env["RSOPTD_SOCKET"])
    assert '"config reloaded"' in process.stderr()

    # a broken file on reload: the daemon says which key and keeps what it has
    write_config(short_tmp, 'log_level = "info"\ncores = "x"\n')
    process.popen.send_signal(signal.SIGHUP)
    refused = wait_for_event(env, "config not reloaded")
    assert "cores: expected a positive integer, got 'x'" in refused["error"]
    assert ctl_json(env, "ping")["cores"] == 1
    assert process.stop() == 0


def test_command_line_flags_win_over_the_config_file(short_tmp: Path, processes: list[Process]) -> None:
    write_config(short_tmp, 'cores = 1\nlog_level = "error"\n')
    process = start(processes, short_tmp, "--cores", "2", "--log-level", "info")
    ping = process.wait_ready()
    assert (ping["cores"], ping["log_level"]) == (2, "info")
    write_config(short_tmp, 'cores = 1\nlog_level = "error"\nretention = "30d"\n')
    process.popen.send_signal(signal.SIGHUP)
    reloaded = wait_for_event(process.env, "config reloaded")
    assert reloaded["applied"] == {"retention": 30 * 86400}
    assert "set on the command line" in reloaded["not_applied"]["cores"]
    assert ctl_json(process.env, "ping")["cores"] == 2


@pytest.mark.parametrize("text, message", [
    ('cores = "x"', "cores: expected a positive integer, got 'x'"),
    ("cores = 0", "cores: expected a positive integer, got 0"),
    ("corse = 4", "corse: unknown key"),
    ('log_level = "loud"', "log_level: expected one of debug, info, warning, error, critical, got 'loud'"),
    ('retention = "forever"', "retention: expected a duration such as '30d'"),
    ('state_dir = "relative/dir"', "state_dir: expected an absolute path"),
    ('[mpi_launcher]\nargs = "-n 2"', "mpi_launcher.args: expected a list of strings, got '-n 2'"),
    ('[mpi_launcher]\nflavour = "mpich"', "mpi_launcher.flavour: unknown key"),
    ("cores = ", "not valid TOML"),
])
def test_a_bad_config_file_is_refused_naming_the_key(short_tmp: Path, text: str, message: str) -> None:
    path = write_config(short_tmp, text + "\n")
    result = subprocess.run([RSOPTD, "--state-dir", str(short_tmp / "statedir")], check=False, capture_output=True, text=True,
                            env=base_env(short_tmp), timeout=60)
    assert result.returncode == 2  # the unit's RestartPreventExitStatus=2: no restart loop on a bad file
    assert f"rsoptd: {path}: {message}" in result.stderr, result.stderr
    assert not (short_tmp / "statedir").exists()


def test_an_explicit_config_file_must_exist(short_tmp: Path) -> None:
    missing = short_tmp / "nope.toml"
    result = subprocess.run([RSOPTD, "--config", str(missing)], check=False, capture_output=True, text=True,
                            env=base_env(short_tmp), timeout=60)
    assert result.returncode == 2 and f"{missing}: no such file" in result.stderr


# -- logs for the journal and for a person ----------------------------------------------


def test_journal_stderr_gets_json_lines_with_syslog_priorities(short_tmp: Path, processes: list[Process]) -> None:
    env = base_env(short_tmp)
    Path(env["RSOPTD_SOCKET"]).parent.mkdir(mode=0o755)  # an open directory: rsoptd warns at start
    stderr = short_tmp / "rsoptd.stderr"
    stderr.touch()
    info = os.stat(stderr)
    env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"  # what systemd sets when stderr is the journal
    process = start(processes, short_tmp, env=env)
    process.wait_ready()
    assert process.stop() == 0
    lines = process.stderr().splitlines()
    events = []
    for line in lines:
        match = re.fullmatch(r"<(\d)>(\{.*\})", line)
        assert match, line
        events.append((int(match.group(1)), json.loads(match.group(2))))
    levels = {event["event"]: (priority, event["level"]) for priority, event in events}
    assert levels["rsoptd ready"] == (6, "info")
    assert levels["the socket's directory is open to other users; the peer check still refuses them"] == (4, "warning")


def test_plain_stderr_gets_plain_json_lines(short_tmp: Path, processes: list[Process]) -> None:
    env = base_env(short_tmp)
    env["JOURNAL_STREAM"] = "1:2"  # inherited from a parent whose stderr was the journal: not ours
    process = start(processes, short_tmp, env=env)
    process.wait_ready()
    assert process.stop() == 0
    events = [json.loads(line) for line in process.stderr().splitlines()]
    assert "rsoptd ready" in [event["event"] for event in events]


def test_a_terminal_gets_readable_lines(short_tmp: Path, processes: list[Process]) -> None:
    env = base_env(short_tmp)
    primary, secondary = pty.openpty()
    popen = subprocess.Popen([RSOPTD, "--state-dir", str(short_tmp / "statedir")], stdin=subprocess.DEVNULL,
                             stdout=secondary, stderr=secondary, env=env, start_new_session=True)
    os.close(secondary)
    process = Process.__new__(Process)
    process.env, process.popen, process.stderr_path = env, popen, short_tmp / "unused"
    processes.append(process)
    process.wait_ready()
    process.stop()
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    text = re.sub(r"\x1b\[[0-9;]*m", "", output.decode())
    ready = [line for line in text.splitlines() if "rsoptd ready" in line]
    assert ready and not ready[0].lstrip().startswith("{"), text
    assert "[info" in ready[0] and "state_dir=" in ready[0]


# -- info, rm, prune ------------------------------------------------------------------------


def test_info_reports_the_daemons_health(short_tmp: Path, processes: list[Process]) -> None:
    process = start(processes, short_tmp, "--cores", "2")
    ping = process.wait_ready()
    for key in ("version", "uptime", "pid", "cores", "busy", "runs", "state_dir", "database_bytes", "loop",
                "mpi_launcher", "socket_activated"):
        assert key in ping, key
    assert ping["pid"] == process.popen.pid and ping["database_bytes"] > 0 and ping["loop"] in ("uvloop", "asyncio")
    assert ping["mpi_launcher"]["command"] == "mpiexec"  # the default when config.toml names none
    text = ctl(process.env, "info").stdout
    assert f"pid {process.popen.pid}" in text and "slots:      0/2 busy" in text and "database:" in text
    assert "MPI:" in text and "(absent: defaults)" in text


def test_config_mpi_launcher_becomes_the_default_info_reports(short_tmp: Path, processes: list[Process]) -> None:
    write_config(short_tmp, '[mpi_launcher]\ncommand = "rsoptd-test-no-such-mpiexec"\nargs = ["-x"]\n')
    process = start(processes, short_tmp)
    mpi = process.wait_ready()["mpi_launcher"]
    assert (mpi["command"], mpi["args"], mpi["path"]) == ("rsoptd-test-no-such-mpiexec", ["-x"], None)
    assert "not found" in mpi["error"]
    assert "MPI:        rsoptd-test-no-such-mpiexec -x: not found" in ctl(process.env, "info").stdout

    write_config(short_tmp, f'[mpi_launcher]\ncommand = "{shutil.which("true")}"\n')
    process.popen.send_signal(signal.SIGHUP)
    reloaded = wait_for_event(process.env, "config reloaded")
    assert reloaded["applied"] == {"mpi_launcher": {"command": shutil.which("true"), "args": []}}
    mpi = ctl_json(process.env, "ping")["mpi_launcher"]
    assert mpi["command"] == mpi["path"] == shutil.which("true")


def test_rm_and_prune_delete_finished_runs_but_never_an_active_one(
        short_tmp: Path, project: Any, processes: list[Process]) -> None:
    process = start(processes, short_tmp, "--cores", "2")
    env = process.env
    process.wait_ready()
    project.function(FUNCTIONS)
    quick = project.config("quadratic")
    first = json.loads(ctl(env, "submit", str(quick), "--wait", "--json", cwd=project.root).stdout)
    second = json.loads(ctl(env, "submit", str(quick), "--wait", "--json", cwd=project.root).stdout)
    slow = project.config("slow", name="slow.yml", options={"nworkers": 1})
    active = json.loads(ctl(env, "submit", str(slow), "--json", cwd=project.root).stdout)["id"]

    removed = ctl_json(env, "rm", str(first["id"]))
    assert removed["removed"] == [first["id"]] and removed["evaluations"] == 6
    assert first["id"] not in [run["id"] for run in ctl_json(env, "list")]
    assert ctl(env, "status", str(first["id"]), check=False).returncode == 2
    assert Path(first["run_dir"]).is_dir()  # only the rows go

    refused = ctl(env, "rm", str(second["id"]), str(active), check=False)
    assert refused.returncode == 2 and f"run {active} is still active" in refused.stderr
    assert second["id"] in [run["id"] for run in ctl_json(env, "list")]  # all or nothing

    assert ctl_json(env, "prune", "--older-than", "1d")["removed"] == []
    assert ctl_json(env, "prune", "--older-than", "0s", "--dry-run")["would_remove"] == [second["id"]]
    pruned = ctl_json(env, "prune", "--older-than", "0s")
    assert pruned["removed"] == [second["id"]] and pruned["run_dirs_kept"] == [second["run_dir"]]
    assert Path(second["run_dir"], "history.npy").exists()
    assert [run["id"] for run in ctl_json(env, "list")] == [active]
    assert ctl(env, "prune", "--older-than", "soon", check=False).returncode == 2

    ctl(env, "cancel", str(active))
    assert ctl_json(env, "prune", "--older-than", "0s")["removed"] == [active]
    assert process.stop() == 0


def test_retention_setting_prunes_old_finished_runs(short_tmp: Path, project: Any, processes: list[Process]) -> None:
    process = start(processes, short_tmp, "--cores", "2")
    env = process.env
    process.wait_ready()
    project.function(FUNCTIONS)
    run = json.loads(ctl(env, "submit", str(project.config("quadratic")), "--wait", "--json", cwd=project.root).stdout)
    write_config(short_tmp, 'retention = "0s"\n')
    process.popen.send_signal(signal.SIGHUP)
    assert wait_for_event(env, "retention removed old runs")["runs"] == [run["id"]]
    assert ctl_json(env, "list") == []
    assert process.stop() == 0
