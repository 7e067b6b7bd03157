"""Optimizers (nlopt, scipy, DFO-LS) through a real daemon: results, exit criteria, failures, resume."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import pytest

CAMEL = {"x": {"min": -3.0, "max": 3.0, "start": 0.08}, "y": {"min": -2.0, "max": 2.0, "start": -0.7}}
CAMEL_MIN = -1.0316284534898774

FUNCTIONS = """
import math, os, time

def camel(x, y):
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2

def logged_camel(x, y, log="calls.log", delay=0.0):
    with open(log, "a") as fh:
        fh.write(f"{x!r} {y!r}\\n")
    time.sleep(delay)
    return camel(x, y)

def camel_with_gradient(x, y):
    f = camel(x, y)
    dfdx = 8 * x - 8.4 * x**3 + 2 * x**5 + y
    dfdy = x - 8 * y + 16 * y**3
    return f, [dfdx, dfdy]

def fails_far_from_start(x, y):
    if abs(x - 0.08) > 0.3 or abs(y + 0.7) > 0.3:
        raise RuntimeError("simulation diverged at x=%s" % x)
    return camel(x, y)

def penalty(J):
    return J["value"] if J["sim_status"] == 34 else 10.0

T = [0.5 * i for i in range(12)]
DATA = [2.5 * math.exp(-0.7 * t) + 0.3 for t in T]

def residuals(a, k, c):
    return [a * math.exp(-k * t) + c - d for t, d in zip(T, DATA)]
"""


def camel_config(project, method="LN_BOBYQA", software="nlopt", function="camel", exit=None, name="camel.yml",
                 setup=None, options=None, settings=None):
    opts = {"software": software, "method": method, "exit_criteria": exit or {"sim_max": 30}, **(options or {})}
    return project.config(function, parameters=CAMEL, setup=setup, options=opts, name=name, settings=settings)


def evaluations(daemon, run_id):
    return daemon.results(run_id)


def check_in_order(records):
    assert [r["sim_id"] for r in records] == list(range(len(records)))


def test_nlopt_bobyqa_finds_the_camel_minimum_within_30_evaluations(daemon, project):
    project.function(FUNCTIONS)
    config = camel_config(project)
    started = time.perf_counter()
    result = daemon.ctl("optimize", "configuration", str(config))
    wall = time.perf_counter() - started
    status = daemon.json("status", "last")
    records = evaluations(daemon, status["id"])
    print(f"\ncamel, nlopt LN_BOBYQA, sim_max 30: {wall:.2f} s wall (submit to end, through rsoptctl), "
          f"{len(records)} evaluations, best f {status['best']['f']:.10f}")
    assert status["state"] == "completed", status["message"]
    assert status["message"] == "sim_max reached: 30 evaluations"
    assert len(records) == 30 and status["done"] == 30 and status["iteration"] == 30
    check_in_order(records)
    assert records[0]["x"] == {"x": 0.08, "y": -0.7}  # the optimizer starts from `start`
    assert status["best"]["f"] < -1.03
    assert min(r["f"] for r in records) == status["best"]["f"]
    assert abs(abs(status["best"]["x"]["x"]) - 0.0898) < 1e-3
    assert "best f" in result.stdout and "iteration" in result.stdout


def test_nlopt_software_options_stop_it_before_sim_max(daemon, project):
    project.function(FUNCTIONS)
    config = camel_config(project, options={"software_options": {"xtol_abs": "1e-6", "ftol_abs": 1e-6}},
                          exit={"sim_max": 200})
    status = daemon.run(config)
    assert status["state"] == "completed", status["message"]
    assert status["done"] < 200
    assert status["message"].startswith("nlopt LN_BOBYQA: ")
    assert status["best"]["f"] < -1.03


@pytest.mark.parametrize("method", ["LN_NELDERMEAD", "LN_SBPLX", "LN_COBYLA", "LN_NEWUOA"])
def test_every_nlopt_method_runs(daemon, project, method):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, method=method, exit={"sim_max": 15}))
    assert status["state"] == "completed", status["message"]
    assert status["done"] == 15
    assert status["best"]["f"] < 0


def test_scipy_nelder_mead_on_the_camel(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, software="scipy", method="Nelder-Mead", exit={"sim_max": 200},
                                     options={"software_options": {"xatol": 1e-6, "fatol": 1e-8}}))
    assert status["state"] == "completed", status["message"]
    assert status["best"]["f"] < -1.03
    assert status["done"] < 200  # scipy's own tolerances ended it
    check_in_order(evaluations(daemon, status["id"]))


def test_scipy_cobyla_on_the_camel(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, software="scipy", method="COBYLA", exit={"sim_max": 60}))
    assert status["state"] == "completed", status["message"]
    assert status["best"]["f"] < -1.0


def test_scipy_bfgs_uses_the_gradient_the_function_returns(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, software="scipy", method="BFGS", function="camel_with_gradient",
                                     exit={"sim_max": 100}))
    assert status["state"] == "completed", status["message"]
    assert status["best"]["f"] == pytest.approx(CAMEL_MIN, abs=1e-6)
    assert status["done"] < 40  # no finite differences were needed


def test_scipy_bfgs_without_a_gradient_uses_finite_differences_in_parallel(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, software="scipy", method="BFGS", exit={"sim_max": 200}))
    assert status["state"] == "completed", status["message"]
    assert status["best"]["f"] == pytest.approx(CAMEL_MIN, abs=1e-6)
    workers = {r["worker"] for r in evaluations(daemon, status["id"])}
    assert workers == {1, 2}  # the two neighbours of each point ran on both lanes


def test_dfols_fits_an_exponential_to_twelve_points(daemon, project):
    project.function(FUNCTIONS)
    config = project.config("residuals", parameters={
        "a": {"min": 0.0, "max": 5.0, "start": 1.0},
        "k": {"min": 0.0, "max": 2.0, "start": 0.3},
        "c": {"min": -1.0, "max": 1.0, "start": 0.0},
    }, options={"software": "dfols", "method": "dfols", "components": 12, "exit_criteria": {"sim_max": 300},
                "software_options": {"dfols_kwargs": {"rhoend": 1e-8}}})
    status = daemon.run(config)
    assert status["state"] == "completed", status["message"]
    assert status["message"].startswith("dfols: ")
    best = status["best"]
    assert best["f"] < 1e-10  # f is the sum of squared residuals
    assert best["x"]["a"] == pytest.approx(2.5, abs=1e-4)
    assert best["x"]["k"] == pytest.approx(0.7, abs=1e-4)
    assert best["x"]["c"] == pytest.approx(0.3, abs=1e-4)


def test_dfols_wrong_number_of_components_ends_the_run(daemon, project):
    project.function(FUNCTIONS)
    config = project.config("residuals", parameters={
        "a": {"min": 0.0, "max": 5.0, "start": 1.0}, "k": {"min": 0.0, "max": 2.0, "start": 0.3},
        "c": {"min": -1.0, "max": 1.0, "start": 0.0},
    }, options={"software": "dfols", "components": 5, "exit_criteria": {"sim_max": 50}})
    status = daemon.run(config)
    assert status["state"] == "failed"
    assert "returned 12 residuals but options.components is 5" in status["message"]


# -- exit criteria -----------------------------------------------------------


def test_sim_max_ends_the_run_as_completed(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, exit={"sim_max": 7}))
    assert (status["state"], status["done"], status["planned"]) == ("completed", 7, 7)
    assert status["message"] == "sim_max reached: 7 evaluations"


def test_elapsed_wallclock_time_ends_the_run_as_completed(daemon, project):
    project.function(FUNCTIONS)
    config = camel_config(project, function="logged_camel", settings={"delay": 0.2},
                          exit={"elapsed_wallclock_time": 1.5})
    started = time.monotonic()
    status = daemon.run(config)
    assert time.monotonic() - started < 10
    assert status["state"] == "completed", status["message"]
    assert status["message"] == "elapsed_wallclock_time reached: 1.5 s"
    records = evaluations(daemon, status["id"])
    finished = [r for r in records if r["status"] == "ok"]
    assert 2 <= len(finished) <= 8
    assert all(r["status"] in ("ok", "cancelled") for r in records)


def test_stop_val_ends_the_run_when_f_falls_below_it(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, exit={"sim_max": 100, "stop_val": ["f", -1.0]}))
    assert status["state"] == "completed", status["message"]
    assert status["message"].startswith("stop_val reached: sim ")
    records = evaluations(daemon, status["id"])
    assert records[-1]["f"] < -1.0
    assert all(r["f"] >= -1.0 for r in records[:-1])


def test_optimizers_require_exit_criteria(daemon, project):
    project.function(FUNCTIONS)
    config = project.config("camel", parameters=CAMEL, options={"software": "nlopt", "method": "LN_BOBYQA"})
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2
    assert "options.exit_criteria: required for optimizers" in result.stderr


# -- config errors ------------------------------------------------------------


def test_a_missing_or_unknown_method_is_a_config_error_naming_the_choices(daemon, project):
    project.function(FUNCTIONS)
    config = project.config("camel", parameters=CAMEL, options={"software": "nlopt", "exit_criteria": {"sim_max": 3}})
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2
    assert "options.method: missing" in result.stderr and "LN_BOBYQA" in result.stderr
    config = camel_config(project, software="scipy", method="Powell", name="powell.yml")
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2
    assert "options.method: 'Powell' is not one of" in result.stderr and "Nelder-Mead, COBYLA, BFGS" in result.stderr
    assert daemon.json("list") == []


def test_an_unknown_nlopt_option_is_a_config_error(daemon, project):
    project.function(FUNCTIONS)
    config = camel_config(project, options={"software_options": {"xtol": 1e-6}})
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2
    assert "options.software_options.xtol" in result.stderr


def test_a_missing_optimizer_library_asks_to_install_the_extra(project, monkeypatch):
    import importlib.util

    from rsoptd import config
    from rsoptd.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dfols" else real(name, *a))
    project.function(FUNCTIONS)
    text = Path(project.config("residuals", options={"software": "dfols", "exit_criteria": {"sim_max": 5}})).read_text()
    with pytest.raises(ConfigError, match=r"install rsoptd\[optimize\]"):
        config.load(text, str(project.root))


# -- failures -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_failed_evaluation_ends_the_optimization_with_a_clear_message(daemon, project, mode):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, function="fails_far_from_start", setup={"serial_python_mode": mode},
                                     exit={"sim_max": 30}))
    assert status["state"] == "failed", status["message"]
    assert "failed: RuntimeError: simulation diverged" in status["message"]
    assert "cannot go on without a value" in status["message"]
    records = evaluations(daemon, status["id"])
    assert records[-1]["status"] == "failed"
    assert all(r["status"] == "ok" for r in records[:-1]) and len(records) > 1


def test_a_failed_evaluation_in_worker_mode_ends_the_run_as_in_rsopt(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, function="fails_far_from_start", exit={"sim_max": 30}))
    assert status["state"] == "failed", status["message"]
    assert "worker mode" in status["message"]


def test_a_penalty_from_the_objective_function_keeps_the_optimizer_going(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, function="fails_far_from_start", setup={"serial_python_mode": "thread"},
                                     options={"objective_function": ["functions.py", "penalty"]},
                                     exit={"sim_max": 30}))
    assert status["state"] == "completed", status["message"]
    records = evaluations(daemon, status["id"])
    assert len(records) == 30
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all(r["f"] == 10.0 for r in failed)
    assert status["best"]["f"] < -1.0


def test_an_optimization_in_process_mode(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, setup={"serial_python_mode": "process"}))
    assert status["state"] == "completed", status["message"]
    assert status["done"] == 30 and status["best"]["f"] < -1.03


def test_an_optimization_and_a_scan_share_the_daemon(daemon, project):
    project.function(FUNCTIONS)
    scan = project.config("logged_camel", parameters={
        "x": {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 5},
        "y": {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 4}}, settings={"delay": 0.05, "log": "scan.log"},
        name="scan.yml")
    scan_id = json.loads(daemon.ctl("submit", str(scan), "--json").stdout)["id"]
    status = daemon.run(camel_config(project))
    assert status["state"] == "completed" and status["best"]["f"] < -1.03
    assert daemon.wait_state(scan_id, ("completed",))["done"] == 20


# -- resume -------------------------------------------------------------------


def test_an_interrupted_optimization_resumes_without_re_running_finished_evaluations(daemon, project):
    project.function(FUNCTIONS)
    calls_log = project.root / "calls.log"
    config = camel_config(project, function="logged_camel", settings={"delay": 0.15, "log": str(calls_log)},
                          exit={"sim_max": 20})
    run_id = json.loads(daemon.ctl("submit", str(config), "--json").stdout)["id"]
    deadline = time.monotonic() + 30
    while daemon.json("status", str(run_id))["done"] < 6:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon.stop(signal.SIGKILL)
    daemon.start()
    before = daemon.results(run_id)
    assert daemon.json("status", str(run_id))["state"] == "interrupted"
    calls_before = calls_log.read_text().splitlines()
    assert len(before) >= 6 and len(calls_before) - len(before) in (0, 1)  # at most the one in flight was lost

    resumed = json.loads(daemon.ctl("resume", str(run_id), "--wait", "--json").stdout)
    assert resumed["state"] == "completed", resumed
    after = daemon.results(run_id)
    assert len(after) == 20
    check_in_order(after)
    assert after[: len(before)] == before  # finished evaluations are kept as they were
    calls = calls_log.read_text().splitlines()
    assert len(calls) == len(calls_before) + 20 - len(before)  # and none of them ran again

    # the replayed run is the run that was never interrupted
    calls_log.unlink()
    fresh = daemon.run(config)
    assert [r["x"] for r in daemon.results(fresh["id"])] == [r["x"] for r in after]
    assert fresh["best"] == resumed["best"]


def test_a_completed_optimization_cannot_be_resumed(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, exit={"sim_max": 5}))
    result = daemon.ctl("resume", str(status["id"]), check=False)
    assert result.returncode == 2
    assert "cannot be resumed" in result.stderr


def test_nan_f_is_never_the_best_and_f_values_are_finite(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(camel_config(project, exit={"sim_max": 10}))
    assert all(r["f"] is not None and math.isfinite(r["f"]) for r in evaluations(daemon, status["id"]))


def test_cancelling_an_optimization_releases_its_thread_and_slot(daemon, project):
    project.function(FUNCTIONS)
    config = camel_config(project, function="logged_camel", settings={"delay": 0.2, "log": str(project.root / "c.log")},
                          exit={"sim_max": 100})
    run_id = json.loads(daemon.ctl("submit", str(config), "--json").stdout)["id"]
    daemon.wait_state(run_id, ("running",))
    status = daemon.json("cancel", str(run_id), timeout=20)
    assert status["state"] == "cancelled"
    assert daemon.json("ping")["busy"] == 0
    # the daemon goes on: another optimization runs at once
    assert daemon.run(camel_config(project, exit={"sim_max": 5}, name="again.yml"))["state"] == "completed"


def test_stop_val_also_ends_a_scan(daemon, project):
    project.function(FUNCTIONS)
    # a scan stops at the end of the batch in flight (batches aim at 20 ms of work), so slow points
    config = project.config("logged_camel", parameters={
        "x": {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 21},
        "y": {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 21}},
        settings={"delay": 0.005, "log": str(project.root / "scan.log")},
        options={"nworkers": 1, "exit_criteria": {"stop_val": ["f", -0.5]}})
    status = daemon.run(config)
    assert status["state"] == "completed", status["message"]
    assert status["message"].startswith("stop_val reached")
    assert status["done"] < 441


PARALLEL = """
import json

def camel_ranks(x, y):
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_rank() == 0:
        f = (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2
        with open("f.json", "w") as fh:
            json.dump(f, fh)

def read_f(J):
    with open("f.json") as fh:
        return json.load(fh)
"""


def test_an_optimization_with_parallel_evaluations(daemon, project):
    pytest.importorskip("mpi4py")
    project.function(PARALLEL, name="parallel.py")
    status = daemon.run(camel_config(project, function="camel_ranks", exit={"sim_max": 6},
                                     setup={"input_file": "parallel.py", "execution_type": "parallel", "cores": 2},
                                     options={"objective_function": ["parallel.py", "read_f"]}))
    assert status["state"] == "completed", status["message"]
    records = evaluations(daemon, status["id"])
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert records[0]["f"] == pytest.approx(-1.0300859286, abs=1e-8)  # the camel at the start point
