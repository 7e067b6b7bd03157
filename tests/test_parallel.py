"""execution_type: parallel through a real mpiexec (2 ranks on the daemon's 2 cores)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rsoptd.pool import SlotPool

FUNCTIONS = r"""
import json, os, signal, sys, time

def gather(x, y, label="none"):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    print("hello from rank %d of %d" % (comm.Get_rank(), comm.Get_size()), flush=True)
    values = comm.gather(comm.Get_rank() + x * y, root=0)
    if comm.Get_rank() == 0:
        with open("result.json", "w") as fh:
            json.dump({"size": comm.Get_size(), "values": values}, fh)

def echo(**inputs):
    from mpi4py import MPI
    with open("inputs-%d.json" % MPI.COMM_WORLD.Get_rank(), "w") as fh:
        json.dump(inputs, fh)

def sleeps(x, y, seconds=600.0):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL may end it
    time.sleep(seconds)
    with open("result.json", "w") as fh:
        json.dump({"size": 2, "values": [x]}, fh)

def crashes(x, y):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if x > 0.6 and comm.Get_rank() == 1:
        print("rank 1 is about to crash", file=sys.stderr, flush=True)
        os._exit(7)
    gather(x, y)

def raises(x, y):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if x > 0.6 and comm.Get_rank() == 1:
        raise ValueError("rank 1 cannot go on at x=%s" % x)
    gather(x, y)  # rank 0 waits in a collective for rank 1, which is gone

def read_result(J):
    if J["sim_status"] != 34:
        return 1000.0 + J["sim_status"]  # a penalty: 1032 timeout, 1033 failed
    assert os.getcwd() == J["sim_dir"]
    with open("result.json") as fh:
        data = json.load(fh)
    return data["size"] * 10 + sum(data["values"])

def pre(J):
    J["inputs"]["label"] = "set by preprocess"

def post(J):
    with open("post.txt", "w") as fh:
        fh.write("%s %s" % (J["sim_status"], J["inputs"]["label"]))

def status_only(J):
    return 1.0 if J["sim_status"] == 34 else 1000.0 + J["sim_status"]

def quick(x, y):
    return x + y

def slow(x, y):
    time.sleep(0.3)
    return x
"""

EVIL = "it's \"quoted\"\nsecond line'); import os; open('pwned', 'w'); ('\\ \u00e9 \x00"


def parallel_config(project, function, parameters=None, setup=None, options=None, settings=None, name="parallel.yml"):
    project.function(FUNCTIONS)
    return project.config(
        function, parameters=parameters, settings=settings,
        setup={"execution_type": "parallel", "cores": 2, "force_executor": True, **(setup or {})},
        options={"objective_function": ["functions.py", "read_result"], "nworkers": 1, **(options or {})}, name=name)


def one_point(x=0.5):
    return {"x": {"min": 0, "max": 1, "start": x, "samples": 1}, "y": {"min": 0, "max": 1, "start": 1, "samples": 1}}


def job_pids(marker: str, daemon_pid: int) -> set[int]:
    """The MPI job: live processes whose command line names `marker` (mpiexec and the ranks name
    the sim dir) and the ranks' parents (Hydra's proxy); and the lane's objective helper."""
    rows = [line.split(None, 3) for line in
            subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True).stdout.splitlines()]
    rows = [(int(pid), int(ppid), args) for pid, ppid, stat, args in rows if not stat.startswith("Z")]
    mine = {pid: ppid for pid, ppid, args in rows if marker in args}
    helper = {pid for pid, ppid, args in rows if ppid == daemon_pid and "rsoptd.mpi_objective" in args}
    return (set(mine) | (set(mine.values()) & {pid for pid, _, _ in rows}) | helper) - {daemon_pid, os.getpid()}


def wait_for_ranks(marker: str, daemon_pid: int, count: int = 5, timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = job_pids(marker, daemon_pid)
        if len(pids) >= count:  # mpiexec, its proxy, two ranks and the helper
            return pids
        time.sleep(0.05)
    raise AssertionError("the MPI job did not start")


def assert_all_gone(pids: set[int], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if _alive(pid)}
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes left running: {left}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_function_runs_on_every_rank_and_the_objective_reads_its_files(daemon, project):
    parameters = {"x": {"min": 0, "max": 1, "start": 0, "samples": 2}, "y": {"min": 2, "max": 2, "start": 2, "samples": 1}}
    status = daemon.run(parallel_config(project, "gather", parameters, options={"nworkers": 2}))
    assert status["state"] == "completed" and status["mode"] == "parallel", status
    records = daemon.results(status["id"])
    # f = size * 10 + sum over ranks of (rank + x * y)
    assert [(r["status"], r["f"]) for r in records] == [("ok", 20 + 1 + 0.0), ("ok", 20 + 1 + 4.0)]
    sim_dir = Path(status["run_dir"]) / "sim_1"
    assert json.loads((sim_dir / "result.json").read_text())["size"] == 2
    assert sorted((sim_dir / "stdout.log").read_text().splitlines()) == ["hello from rank 0 of 2", "hello from rank 1 of 2"]


def test_cores_above_the_daemons_total_and_a_missing_objective_are_rejected(daemon, project):
    result = daemon.ctl("submit", str(parallel_config(project, "gather", one_point(), setup={"cores": 3})), check=False)
    assert result.returncode == 2
    assert "codes[0].python.setup.cores: 3 cores requested but the daemon has 2" in result.stderr
    config = project.config("gather", setup={"execution_type": "parallel", "cores": 2}, name="no-objective.yml")
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2
    assert "options.objective_function: required with execution_type: parallel" in result.stderr
    assert daemon.json("list") == []


def test_string_settings_arrive_unchanged_and_execute_nothing(daemon, project):
    settings = {"label": EVIL, "items": [1, "two", None, {"k": "'; os.system('x')"}], "flag": True}
    config = parallel_config(project, "echo", one_point(0.25), settings=settings,
                             options={"objective_function": ["functions.py", "status_only"]})
    status = daemon.run(config)
    assert status["state"] == "completed" and status["best"]["f"] == 1.0, status
    sim_dir = Path(status["run_dir"]) / "sim_0"
    for rank in (0, 1):
        seen = json.loads((sim_dir / f"inputs-{rank}.json").read_text())
        assert seen == {**settings, "x": 0.25, "y": 1.0}
    assert not any(Path(status["run_dir"]).rglob("pwned")) and not (project.root / "pwned").exists()


def test_preprocess_changes_what_the_ranks_get_and_postprocess_sees_the_status(daemon, project):
    config = parallel_config(project, "echo", one_point(), settings={"label": "from config"},
                             setup={"preprocess": ["functions.py", "pre"], "postprocess": ["functions.py", "post"]},
                             options={"objective_function": ["functions.py", "status_only"]})
    status = daemon.run(config)
    assert status["state"] == "completed" and status["best"]["f"] == 1.0, status
    sim_dir = Path(status["run_dir"]) / "sim_0"
    assert json.loads((sim_dir / "inputs-1.json").read_text())["label"] == "set by preprocess"
    assert (sim_dir / "post.txt").read_text() == "34 set by preprocess"


def test_a_setting_json_cannot_carry_unchanged_fails_the_evaluation_clearly(daemon, project):
    config = parallel_config(project, "echo", one_point(), settings={"when": "2024-01-02"},
                             options={"objective_function": ["functions.py", "status_only"]})
    config.write_text(config.read_text().replace("'2024-01-02'", "2024-01-02"))  # YAML reads a date
    status = daemon.run(config)
    (record,) = daemon.results(status["id"])
    assert record["status"] == "failed" and record["f"] == 1033.0
    assert "cannot be passed to the MPI ranks as JSON: when is a date" in record["error"]


def test_timeout_kills_every_rank_and_the_objective_gives_a_penalty(daemon, project):
    config = parallel_config(project, "sleeps", one_point(), setup={"timeout": 1.5})
    run_id = int(daemon.ctl("submit", str(config)).stdout.split()[-1])
    pids = wait_for_ranks(str(project.root), daemon.process.pid)
    status = daemon.wait_state(run_id, ("completed", "failed"))
    assert status["state"] == "completed", status
    (record,) = daemon.results(run_id)
    assert record["status"] == "timeout" and record["f"] == 1032.0
    assert "no result within the timeout of 1.5 s" in record["error"]
    assert_all_gone(pids)


def test_cancel_kills_every_rank(daemon, project):
    run_id = int(daemon.ctl("submit", str(parallel_config(project, "sleeps", one_point()))).stdout.split()[-1])
    pids = wait_for_ranks(str(project.root), daemon.process.pid)
    daemon.ctl("cancel", str(run_id))
    assert daemon.wait_state(run_id, ("cancelled",))["state"] == "cancelled"
    assert_all_gone(pids)


def test_daemon_shutdown_kills_every_rank_and_marks_the_run_interrupted(daemon, project):
    run_id = int(daemon.ctl("submit", str(parallel_config(project, "sleeps", one_point()))).stdout.split()[-1])
    pids = wait_for_ranks(str(project.root), daemon.process.pid)
    assert daemon.stop() == 0
    assert_all_gone(pids)
    daemon.start()
    assert daemon.json("status", str(run_id))["state"] == "interrupted"


@pytest.mark.parametrize(("function", "expected"), [
    ("crashes", "rank 1 is about to crash"),
    ("raises", "ValueError: rank 1 cannot go on at x=1.0"),
])
def test_a_failing_rank_fails_the_evaluation_and_the_run_goes_on(daemon, project, function, expected):
    parameters = {"x": {"min": 0, "max": 1, "start": 0, "samples": 3}, "y": {"min": 1, "max": 1, "start": 1, "samples": 1}}
    status = daemon.run(parallel_config(project, function, parameters, setup={"timeout": 30}))
    assert status["state"] == "completed", status
    records = daemon.results(status["id"])
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    failed = records[2]
    assert failed["f"] == 1033.0  # the objective ran with sim_status 33 and gave its penalty
    assert failed["error"].startswith("mpiexec exited with status ")
    assert expected in failed["error"]
    assert failed["ended"] - failed["started"] < 20  # ended by MPI, not by the timeout


def test_a_two_core_evaluation_blocks_a_serial_one_until_it_frees_its_slots(daemon, project):
    wide = parallel_config(project, "sleeps", one_point(), settings={"seconds": 1.5}, name="wide.yml")
    wide_id = int(daemon.ctl("submit", str(wide)).stdout.split()[-1])
    wait_for_ranks(str(project.root), daemon.process.pid)
    narrow = daemon.run(project.config("quick", parameters=one_point(), name="narrow.yml"))
    assert narrow["state"] == "completed"
    (parallel,) = daemon.results(wide_id)
    (serial,) = daemon.results(narrow["id"])
    assert parallel["status"] == "ok" and parallel["f"] == 20.5
    assert serial["started"] >= parallel["ended"]


def test_a_parallel_run_is_not_starved_by_a_serial_run_and_never_oversubscribes(daemon, project):
    project.function(FUNCTIONS)
    serial = project.config("slow", parameters={"x": {"min": 0, "max": 1, "start": 0, "samples": 12},
                                                "y": {"min": 0, "max": 0, "start": 0, "samples": 1}},
                            setup={"serial_python_mode": "process"}, name="serial.yml")
    serial_id = int(daemon.ctl("submit", str(serial)).stdout.split()[-1])
    daemon.wait_state(serial_id, ("running",))
    wide = parallel_config(project, "gather", {"x": {"min": 0, "max": 1, "start": 0, "samples": 2},
                                               "y": {"min": 1, "max": 1, "start": 1, "samples": 1}})
    wide_status = daemon.run(wide)
    serial_status = daemon.wait_state(serial_id, ("completed", "failed"))
    assert wide_status["state"] == serial_status["state"] == "completed"
    parallel = daemon.results(wide_status["id"])
    serial_records = daemon.results(serial_id)
    assert [r["f"] for r in parallel] == [21.0, 23.0]
    assert all(r["status"] == "ok" for r in serial_records), serial_records
    # the wide run got its turn while the serial run still had points to evaluate ...
    assert parallel[-1]["ended"] < max(r["started"] for r in serial_records)
    # ... and while it held both cores, no serial evaluation ran
    for p in parallel:
        for s in serial_records:
            assert s["ended"] <= p["started"] or s["started"] >= p["ended"], (p, s)


def test_a_wide_slot_request_is_served_before_narrower_later_ones():
    async def scenario() -> None:
        pool = SlotPool(2)
        await pool.acquire("serial", 1)
        await pool.acquire("serial", 1)
        wide = asyncio.create_task(pool.acquire("mpi", 2))
        await asyncio.sleep(0)
        narrow = asyncio.create_task(pool.acquire("serial", 1))  # asks after the wide request
        await asyncio.sleep(0)
        pool.release(1)
        await asyncio.sleep(0)
        assert not wide.done() and not narrow.done()  # the freed core is kept for the wide request
        pool.release(1)
        await asyncio.sleep(0)
        assert wide.done() and not narrow.done() and pool.free == 0
        pool.release(2)
        await asyncio.sleep(0)
        assert narrow.done() and pool.free == 1

    asyncio.run(scenario())


def test_rank_output_is_streamed_to_log_followers_tagged_with_run_and_sim(daemon, project):
    follower = subprocess.Popen([*_ctl(daemon), "logs", "-f", "--json", "-n", "0"], stdout=subprocess.PIPE,
                                text=True, env=daemon.env)
    events: queue.Queue[dict] = queue.Queue()
    reader = threading.Thread(target=lambda: [events.put(json.loads(line)) for line in follower.stdout
                                              if line.startswith("{")], daemon=True)
    reader.start()
    try:
        # output is streamed only while someone follows: first make sure the follower is subscribed
        project.function(FUNCTIONS)
        warm_up = project.config("quick", parameters=one_point(), name="warm-up.yml")
        for _ in range(20):
            run_id = daemon.run(warm_up)["id"]
            if _wait_event(events, lambda e: e.get("run_id") == run_id, 1.0):
                break
        status = daemon.run(parallel_config(project, "gather", one_point()))
        assert status["state"] == "completed"
        wanted = {(status["id"], 0, "stdout", f"hello from rank {r} of 2") for r in (0, 1)}
        seen: set = set()
        _wait_event(events, lambda e: (seen.add((e.get("run_id"), e.get("sim_id"), e.get("stream"), e.get("line")))
                                       or wanted <= seen), 10.0)
        assert wanted <= seen
    finally:
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=10)


def _wait_event(events, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            if predicate(events.get(timeout=left)):
                return True
        except queue.Empty:
            return False
    return False


def test_the_launcher_and_its_arguments_come_from_the_run_options(daemon, project):
    _recording_launcher(project.root / "my-mpiexec", project)
    config = parallel_config(project, "gather", one_point(),
                             options={"mpi_launcher": {"command": "./my-mpiexec", "args": ["-launcher", "fork"]}})
    status = daemon.run(config)
    assert status["state"] == "completed" and status["best"]["f"] == 22.0
    assert (project.root / "launcher-args").read_text().startswith("-launcher fork -n 2 ")
    missing = parallel_config(project, "gather", one_point(), options={"mpi_launcher": {"command": "no-such-mpiexec"}},
                              name="missing.yml")
    status = daemon.run(missing)
    assert status["state"] == "failed"
    assert "MPI launcher 'no-such-mpiexec' not found on the run's PATH" in status["message"]


def test_mpiexec_on_the_submitters_path_comes_before_the_one_beside_rsoptd(daemon, project):
    bin_dir = project.root / "bin"
    bin_dir.mkdir()
    _recording_launcher(bin_dir / "mpiexec", project)
    env = dict(daemon.env, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
    result = daemon.ctl("submit", str(parallel_config(project, "gather", one_point())), "--wait", "--json", env=env)
    assert json.loads(result.stdout)["best"]["f"] == 22.0
    assert (project.root / "launcher-args").read_text().startswith("-n 2 ")


def _recording_launcher(path: Path, project) -> None:
    """A launcher that writes down its arguments, then hands them to the real mpiexec."""
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" > {project.root}/launcher-args\n"
                    f"exec {Path(sys.executable).parent}/mpiexec \"$@\"\n")
    path.chmod(0o755)


def _ctl(daemon):
    from conftest import RSOPTCTL

    return [RSOPTCTL, "--no-autostart"]
