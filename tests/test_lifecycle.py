"""Runs and the daemon over time: cancel, sharing, kills, restarts, resume, autostart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import RSOPTCTL, Daemon, executor_pids, processes_under

SLOW = """
import os, subprocess, time

def slow(x, y=0.0, delay=0.05, log=None):
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, ("%r\\n" % x).encode())
        os.close(fd)
    time.sleep(delay)
    return x

def spawns_and_hangs(x, y=0.0):
    subprocess.Popen(["sleep", "987"])
    time.sleep(600)
"""


def line(n: int) -> dict:
    return {"x": {"min": 0, "max": n - 1, "start": 0, "samples": n}}


def test_cancel_stops_a_run_and_keeps_what_finished(daemon, project):
    project.function(SLOW)
    config = project.config("slow", parameters=line(200), settings={"delay": 0.05})
    run_id = daemon.ctl("submit", str(config)).stdout.strip()
    deadline = time.monotonic() + 30
    while daemon.json("status", run_id)["done"] < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = daemon.json("cancel", run_id)
    assert cancelled["state"] == "cancelled"
    records = daemon.results(int(run_id))
    assert 4 <= sum(r["status"] == "ok" for r in records) < 200
    assert executor_pids(daemon.home) == set()
    assert daemon.ctl("status", run_id, check=False).returncode == 1  # cancelled runs exit 1


def test_two_runs_share_the_slots_so_a_short_scan_is_not_stuck_behind_a_long_one(daemon, project):
    project.function(SLOW)
    long = project.config("slow", parameters=line(60), settings={"delay": 0.05}, name="long.yml")
    short = project.config("slow", parameters=line(4), settings={"delay": 0.05}, name="short.yml")
    long_id = daemon.ctl("submit", str(long)).stdout.strip()
    time.sleep(0.3)
    short_status = daemon.run(short)
    long_status = daemon.json("status", long_id)
    assert short_status["state"] == "completed"
    assert long_status["state"] == "running", "the short scan had to wait for the long one"
    assert long_status["done"] < 60
    daemon.wait_state(int(long_id), ("completed",))


def test_runs_start_in_submission_order(daemon, project):
    project.function(SLOW)
    ids = [daemon.ctl("submit", str(project.config("slow", parameters=line(4), name=f"r{i}.yml"))).stdout.strip()
           for i in range(3)]
    starts = [daemon.wait_state(int(i), ("completed",))["started"] for i in ids]
    assert starts == sorted(starts)


def test_sigkill_restart_keeps_finished_evaluations_and_resume_runs_only_the_rest(daemon, project, short_tmp):
    project.function(SLOW)
    calls = short_tmp / "calls.log"
    config = project.config("slow", parameters=line(40), settings={"delay": 0.1, "log": str(calls)})
    run_id = daemon.ctl("submit", str(config)).stdout.strip()
    deadline = time.monotonic() + 30
    while daemon.json("status", run_id)["done"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.stop(signal.SIGKILL)
    time.sleep(0.3)
    assert executor_pids(daemon.home) == set(), "executors must die with the daemon"

    daemon.start()
    status = daemon.json("status", run_id)
    assert status["state"] == "interrupted"
    kept = {r["sim_id"]: r for r in daemon.results(int(run_id))}
    assert len(kept) >= 6 and all(r["status"] == "ok" for r in kept.values())

    daemon.ctl("resume", run_id)
    final = daemon.wait_state(int(run_id), ("completed", "failed"))
    assert final["state"] == "completed" and final["done"] == 40
    records = daemon.results(int(run_id))
    assert [r["sim_id"] for r in records] == list(range(40))
    evaluated = Counter(float(v) for v in calls.read_text().split())
    for sim_id, record in kept.items():
        assert evaluated[record["x"]["x"]] == 1, f"sim {sim_id} finished before the kill but ran again"
    assert set(evaluated) == {float(i) for i in range(40)}


@pytest.mark.parametrize("mode", ["worker", "process"])
def test_sigterm_ends_every_evaluation_and_leaves_no_process(daemon, project, mode):
    project.function(SLOW)
    config = project.config("spawns_and_hangs", setup={"serial_python_mode": mode})
    run_id = daemon.ctl("submit", str(config)).stdout.strip()
    deadline = time.monotonic() + 20
    while "sleep 987" not in _processes(daemon.home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleep 987" in _processes(daemon.home) and executor_pids(daemon.home)
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 8
    time.sleep(0.2)
    assert "sleep 987" not in _processes(daemon.home)
    assert executor_pids(daemon.home) == set()
    assert not daemon.socket.exists()
    daemon.start()
    assert daemon.json("status", run_id)["state"] == "interrupted"


def test_a_second_signal_exits_at_once(daemon, project):
    project.function(SLOW)
    daemon.ctl("submit", str(project.config("spawns_and_hangs")))
    deadline = time.monotonic() + 20
    while "sleep 987" not in _processes(daemon.home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleep 987" in _processes(daemon.home) and executor_pids(daemon.home)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.wait(10)
    time.sleep(0.2)
    assert "sleep 987" not in _processes(daemon.home)
    assert executor_pids(daemon.home) == set()


def test_shutdown_command_stops_the_daemon(daemon):
    daemon.ctl("shutdown")
    assert daemon.process is not None
    assert daemon.process.wait(10) == 0
    assert daemon.ctl("ping", check=False).returncode == 3


def test_client_autostarts_a_daemon_that_leaves_when_idle(short_tmp, project):
    project.function(SLOW)
    env = dict(os.environ, RSOPTD_SOCKET=str(short_tmp / "auto" / "rsoptd.sock"), XDG_STATE_HOME=str(short_tmp / "xdg"))
    config = project.config("slow", parameters=line(3))
    started = subprocess.run([RSOPTCTL, "submit", str(config), "--wait", "--json"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["done"] == 3
    ping = json.loads(subprocess.run([RSOPTCTL, "ping", "--json"], env=env, capture_output=True, text=True).stdout)
    assert (short_tmp / "xdg" / "rsoptd" / "rsoptd.db").exists()
    subprocess.run([RSOPTCTL, "shutdown"], env=env, check=True, capture_output=True)
    _wait_gone(ping["pid"])


def test_idle_exit(short_tmp):
    d = Daemon(socket=short_tmp / "s" / "rsoptd.sock", state_dir=short_tmp / "state", home=short_tmp, cores=1)
    d.start("--idle-exit", "0.5")
    assert d.process is not None
    assert d.process.wait(10) == 0
    assert not d.socket.exists()


def test_no_autostart_reports_an_unreachable_daemon(short_tmp):
    env = dict(os.environ, RSOPTD_SOCKET=str(short_tmp / "none.sock"))
    result = subprocess.run([RSOPTCTL, "--no-autostart", "list"], env=env, capture_output=True, text=True)
    assert result.returncode == 3
    assert "no rsoptd answers" in result.stderr


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(daemon):
    other = Daemon(socket=daemon.home / "other.sock", state_dir=daemon.state_dir, home=daemon.home, cores=1)
    with pytest.raises(RuntimeError, match="another rsoptd is using the state directory"):
        other.start()


def _processes(root: Path) -> str:
    return "\n".join(processes_under(root).values())


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


