"""rsoptctl watch in a real pseudo-terminal, and rsoptctl plot of every kind, drawn by a real daemon."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import RSOPTCTL, Daemon

matplotlib_image = pytest.importorskip("matplotlib.image")

FUNCTIONS = """
import time

def bowl(x, y=0.0, z=0.0, pause=0.0):
    time.sleep(pause)
    if x > 0.9 and y > 0.5:
        raise RuntimeError("outside the safe region")
    return (x - 0.3) ** 2 + (y - 0.1) ** 2 + z ** 2
"""
X = {"min": 0.0, "max": 1.0, "start": 0.5, "samples": 11}
Y = {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 11}
Z = {"min": -1.0, "max": 1.0, "start": 0.2}
THREAD = {"serial_python_mode": "thread"}  # a failed evaluation fails alone


def slow_scan(project, points: int, pause: float, name: str = "slow.yml"):
    project.function(FUNCTIONS)
    return project.config("bowl", parameters={"x": X, "y": Y}, settings={"pause": pause}, setup=THREAD,
                          options={"software": "lh_scan", "batch_size": points, "seed": 3}, name=name)


# -- watch -----------------------------------------------------------------


def watch_in_pty(daemon: Daemon, *args: str) -> tuple[int, int]:
    """rsoptctl watch as a person would run it: in a terminal, as its session's foreground job."""
    env = {**daemon.env, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.chdir(daemon.home)
        os.execve(RSOPTCTL, [RSOPTCTL, "--no-autostart", "watch", *args], env)
    return pid, fd


def read_until(fd: int, pid: int, done, timeout: float) -> tuple[str, int | None]:
    """Terminal output until `done(text)` or the process exits; (text, exit status or None)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's last user has gone
                data = b""
            if not data:
                break
            chunks.append(data)
            if done(b"".join(chunks).decode(errors="replace")):
                return b"".join(chunks).decode(errors="replace"), None
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks).decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_watch_in_a_terminal_redraws_progress_and_exits_when_the_run_ends(daemon, project):
    run = daemon.json("submit", str(slow_scan(project, 120, 0.01)))["id"]
    pid, fd = watch_in_pty(daemon, str(run))
    try:
        text, code = read_until(fd, pid, lambda text: False, timeout=60)
    finally:
        os.close(fd)
    assert code == 0, text
    assert f"run {run} running" in text and "evaluations/s" in text and "ETA" in text
    assert "█" in text and "slots" in text and "best f" in text and "best so far" in text
    assert text.count("\033[K") > 10 and "\033[" in text and "F" in text  # redrawn in place, many times
    assert f"run {run} completed" in text and "120/120 done" in text
    assert "evaluation failed" in text  # the log events of its failures
    assert text.endswith("\033[?25h")  # the cursor is given back


def test_ctrl_c_leaves_the_view_and_the_run_goes_on(daemon, project):
    run = daemon.json("submit", str(slow_scan(project, 2000, 0.05)))["id"]
    pid, fd = watch_in_pty(daemon, str(run))
    try:
        text, code = read_until(fd, pid, lambda text: "evaluations/s" in text and "/2000 done" in text, timeout=30)
        assert code is None, text
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
        more, code = read_until(fd, pid, lambda text: False, timeout=15)
    finally:
        os.close(fd)
    assert code == 0, text + more
    assert f"stopped watching; run {run} goes on" in more
    assert "Traceback" not in more
    assert daemon.json("status", str(run))["state"] == "running"
    daemon.ctl("cancel", str(run))


def test_watch_off_a_terminal_prints_plain_lines_for_every_active_run(daemon, project):
    first = daemon.json("submit", str(slow_scan(project, 400, 0.02)))["id"]
    second = daemon.json("submit", str(slow_scan(project, 400, 0.02, name="second.yml")))["id"]
    watcher = subprocess.Popen([RSOPTCTL, "--no-autostart", "watch", "--interval", "0.3"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=daemon.env)
    time.sleep(2)
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=10)
    assert watcher.returncode == 0, err
    assert "\033[" not in out  # no terminal, no escape sequences
    lines = out.splitlines()
    assert any(f"{first}    running" in line for line in lines), out
    assert any(f"{second}    running" in line for line in lines), out
    assert any("run queued" in line for line in lines)

    plain = daemon.ctl("watch", str(first), "--interval", "0.3", check=False, timeout=60)  # one run: until it ends
    assert plain.returncode == 0, plain.stderr
    assert "completed" in plain.stdout.splitlines()[-1] or "run ended" in plain.stdout.splitlines()[-1]
    frames = [json.loads(line) for line in daemon.ctl("watch", str(first), "--json").stdout.splitlines()]
    assert frames[-1]["event"] == "end" and frames[-1]["runs"][0]["state"] == "completed"
    assert frames[-1]["runs"][0]["best_trace"] and frames[-1]["runs"][0]["slots"] == 0
    daemon.ctl("cancel", str(second), check=False)


# -- plot --------------------------------------------------------------------


def check_picture(path: Path, size: tuple[int, int] = (900, 600)) -> None:
    """A real picture: the expected size in pixels, and far from blank."""
    assert path.stat().st_size > 10_000
    image = matplotlib_image.imread(path)
    assert image.shape[1::-1] == size
    rgb = image[..., :3]
    drawn = (rgb < 0.95).any(axis=2).mean()  # share of pixels that are not white
    data = (rgb.max(axis=2) - rgb.min(axis=2) > 0.2).mean()  # coloured, not grey: data, not axes or text
    colours = len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert drawn > 0.02 and data > 0.003 and colours > 30, (drawn, data, colours)


def plot(daemon: Daemon, run: int, path: Path, *args: str) -> dict:
    started = time.perf_counter()
    result = daemon.ctl("plot", str(run), "-o", str(path), *args, "--json")
    meta = json.loads(result.stdout)
    meta["wall"] = time.perf_counter() - started
    assert meta["path"] == str(path)
    return meta


def test_plot_chooses_a_kind_for_each_run_and_shows_failures(daemon, project, short_tmp):
    project.function(FUNCTIONS)
    configs = {
        "heatmap": project.config("bowl", parameters={"x": X, "y": Y}, setup=THREAD, name="mesh.yml"),
        "scatter": project.config("bowl", parameters={"x": X, "y": Y}, setup=THREAD, name="lh.yml",
                                  options={"software": "lh_scan", "batch_size": 150, "seed": 1}),
        "slice": project.config("bowl", parameters={"x": X}, setup=THREAD, name="line.yml"),
        "parallel": project.config("bowl", parameters={"x": X, "y": Y, "z": Z}, setup=THREAD, name="three.yml",
                                   options={"software": "lh_scan", "batch_size": 200, "seed": 2}),
        "history": project.config("bowl", parameters={"x": X, "y": Y}, name="opt.yml",
                                  options={"software": "nlopt", "method": "LN_BOBYQA",
                                           "exit_criteria": {"sim_max": 25}}),
    }
    for kind, config in configs.items():
        status = daemon.run(config)
        assert status["state"] == "completed", status
        path = short_tmp / f"{kind}.png"
        meta = plot(daemon, status["id"], path)
        assert meta["kind"] == kind and meta["count"] == status["done"] and meta["failed"] == status["failed"]
        check_picture(path, (1100, 850) if kind == "parallel" else (900, 600))
        if kind in ("heatmap", "scatter", "parallel"):
            assert meta["failed"] > 0  # drawn as red x (or dashed lines), counted in the legend
    mesh = 1
    for kind in ("history", "slice", "scatter", "parallel"):  # any kind of any run, when asked
        assert plot(daemon, mesh, short_tmp / f"mesh-{kind}.png", "--kind", kind)["kind"] == kind
        check_picture(short_tmp / f"mesh-{kind}.png", (1100, 850) if kind == "parallel" else (900, 600))
    svg = plot(daemon, mesh, short_tmp / "mesh.svg")
    assert (short_tmp / "mesh.svg").read_text().lstrip().startswith("<?xml") and svg["format"] == "svg"
    plot(daemon, mesh, short_tmp / "mesh.pdf")
    assert (short_tmp / "mesh.pdf").read_bytes().startswith(b"%PDF")

    one = daemon.ctl("plot", "3", "--kind", "heatmap", check=False)  # run 3 has one parameter
    assert one.returncode == 2 and "needs two parameters" in one.stderr
    assert daemon.ctl("plot", "99", check=False).returncode == 2
    bad = daemon.ctl("plot", str(mesh), "-o", str(short_tmp / "x.jpeg"), check=False)
    assert bad.returncode == 2 and ".png, .svg or .pdf" in bad.stderr
    default = daemon.ctl("plot", "last", cwd=short_tmp)  # no -o: runID-KIND.png where it is run
    assert (short_tmp / "run5-history.png").exists(), default.stderr


def test_plot_of_a_running_run_draws_what_has_finished(daemon, project, short_tmp):
    run = daemon.json("submit", str(slow_scan(project, 3000, 0.02)))["id"]
    deadline = time.monotonic() + 30
    while daemon.json("status", str(run))["done"] < 60 and time.monotonic() < deadline:
        time.sleep(0.1)
    for kind in ("scatter", "history"):
        meta = plot(daemon, run, short_tmp / f"running-{kind}.png", "--kind", kind)
        assert meta["state"] == "running" and 60 <= meta["count"] < 3000
        check_picture(short_tmp / f"running-{kind}.png")
    daemon.ctl("cancel", str(run))


def test_a_million_point_scan_plots_in_seconds(daemon, project, short_tmp):
    """A real 1000 x 1000 mesh run whose evaluations are then written straight into its database
    (a real scan of a million points takes about 50 s on two cores)."""
    project.function(FUNCTIONS)
    config = project.config("bowl", parameters={"x": {**X, "samples": 1000}, "y": {**Y, "samples": 1000}},
                            setup=THREAD, options={"nworkers": 1}, name="million.yml")
    run = daemon.json("submit", str(config))["id"]
    daemon.ctl("cancel", str(run))
    daemon.stop()

    started = time.perf_counter()
    x, y = (a.ravel() for a in np.meshgrid(np.linspace(0, 1, 1000), np.linspace(-1, 1, 1000), indexing="ij"))
    f = (x - 0.3) ** 2 + (y - 0.1) ** 2
    failed = (x > 0.9) & (y > 0.5)
    rows = ((run, i, f"[{x[i]!r}, {y[i]!r}]", None if failed[i] else float(f[i]), "failed" if failed[i] else "ok",
             "RuntimeError: outside the safe region" if failed[i] else None, 0.0, 0.0, 1) for i in range(len(x)))
    db = sqlite3.connect(daemon.state_dir / "rsoptd.db")
    with db:
        db.execute("DELETE FROM evaluations WHERE run_id = ?", (run,))
        db.executemany("INSERT INTO evaluations (run_id, sim_id, x, f, status, error, started, ended, worker) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("UPDATE runs SET state = 'completed', message = NULL WHERE id = ?", (run,))
    db.close()
    print(f"\nwrote 1,000,000 evaluations in {time.perf_counter() - started:.1f} s")
    daemon.start()

    for kind in ("heatmap", "history", "slice", "parallel"):
        path = short_tmp / f"million-{kind}.png"
        meta = plot(daemon, run, path, "--kind", kind)
        print(f"plot of 1,000,000 evaluations ({kind}): {meta['wall']:.2f} s at the client, "
              f"{meta['seconds']:.2f} s in the daemon, {path.stat().st_size // 1024} KiB")
        assert meta["count"] == 1_000_000 and meta["failed"] == int(failed.sum())
        check_picture(path, (1100, 850) if kind == "parallel" else (900, 600))


def test_plot_without_matplotlib_asks_for_the_extra(short_tmp, project):
    hidden = short_tmp / "no-matplotlib" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named matplotlib (hidden by this test)')\n")

    class WithoutMatplotlib(Daemon):
        @property
        def env(self) -> dict[str, str]:
            return {**super().env, "PYTHONPATH": str(hidden.parent)}

    daemon = WithoutMatplotlib(socket=short_tmp / "s2" / "rsoptd.sock", state_dir=short_tmp / "state2",
                               home=short_tmp, cores=2).start()
    try:
        project.function(FUNCTIONS)
        status = daemon.run(project.config("bowl", parameters={"x": X}, setup=THREAD))
        result = daemon.ctl("plot", str(status["id"]), "-o", str(short_tmp / "never.png"), check=False)
        assert result.returncode == 2 and "install rsoptd[plot]" in result.stderr, result.stderr
        assert not (short_tmp / "never.png").exists()
    finally:
        daemon.stop()


# -- the pieces, without a daemon ------------------------------------------------


def test_sparkline_and_bar_show_the_best_so_far_and_the_failures():
    from rsoptctl import watch

    status = {"done": 100, "failed": 10, "planned": 200, "best": {"f": 1.0, "sim_id": 7, "x": {}},
              "best_trace": [[1, 9.0], [10, 5.0], [50, 2.0]]}
    line = watch.sparkline(status, 10)
    assert len(line) == 10 and line[0] == "█" and line[-1] == "▁"
    assert list(line) == sorted(line, reverse=True)  # best so far never rises
    decades = {**status, "best": {"f": 1e-3, "sim_id": 7, "x": {}}, "best_trace": [[1, 1e3], [10, 10.0], [50, 0.1]]}
    assert len(set(watch.sparkline(decades, 10))) == 3  # logarithmic: 0.1 is not drawn as low as 0.001
    assert watch.sparkline({"done": 0, "best": None, "best_trace": []}, 10) == ""
    assert watch.bar(status, 20) == "[" + "█" * 9 + "▒" + "░" * 10 + "]"
    assert watch.clock(3725.4) == "1:02:05" and watch.eta({**status, "state": "running"}, 10.0) == "0:00:10"


def test_views_of_many_evaluations_keep_extremes_failures_and_cells():
    from rsoptd import plotdata

    y = np.arange(1000, dtype=float)
    y[500] = np.nan
    starts, lo, hi = plotdata.envelope(y, 10)
    assert len(starts) == 10 and lo[0] == 0 and hi[-1] == 999 and lo[5] == 501
    x, z = (a.ravel() for a in np.meshgrid([0.0, 0.5, 1.0], [-1.0, 1.0], indexing="ij"))
    failed = np.array([False, False, False, True, False, False])
    grid = plotdata.grid_2d(x, z, x + z, failed)
    assert grid.exact and grid.mean.shape == (2, 3) and grid.failed.sum() == 1
    assert np.isnan(grid.mean[1, 1]) and grid.mean[0, 2] == 0.0
    binned = plotdata.bin_1d(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000), bins=10)
    assert binned.low[0] == 0 and binned.high[-1] == 1 and np.all(np.diff(binned.mean) > 0)
    keep = plotdata.sample(10_000, 100, keep=[9_999])
    assert len(keep) == 101 and keep[-1] == 9_999 and np.array_equal(keep, plotdata.sample(10_000, 100, keep=[9_999]))
