"""Fixtures: a real rsoptd on a temporary socket and state dir, driven by the real rsoptctl."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

BIN = Path(sys.executable).parent
RSOPTD = shutil.which("rsoptd", path=str(BIN)) or "rsoptd"
RSOPTCTL = shutil.which("rsoptctl", path=str(BIN)) or "rsoptctl"


@dataclass
class Daemon:
    """A running rsoptd and the means to drive it through rsoptctl."""

    socket: Path
    state_dir: Path
    home: Path
    cores: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / "rsoptd.stderr"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # never read a developer's own ~/.config/rsoptd/config.toml or state
        env.update(RSOPTD_SOCKET=str(self.socket), XDG_STATE_HOME=str(self.home / "xdg-state"),
                   XDG_CONFIG_HOME=str(self.home / "xdg-config"))
        return env

    def start(self, *extra: str) -> Daemon:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [RSOPTD, "--socket", str(self.socket), "--state-dir", str(self.state_dir),
                 "--cores", str(self.cores), "--log-level", "debug", *extra],
                stdout=log, stderr=log, env=self.env, start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ctl("ping", check=False).returncode == 0:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"rsoptd exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise RuntimeError("rsoptd did not answer")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def ctl(self, *args: str, check: bool = True, timeout: float = 120, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [RSOPTCTL, "--no-autostart", *args], capture_output=True, text=True, timeout=timeout,
            env=env or self.env, cwd=cwd or self.home,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"rsoptctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        """A command's --json output; exit code 1 (a failed or cancelled run) still prints data."""
        result = self.ctl(*args, "--json", check=False, **kwargs)
        assert result.returncode in (0, 1), f"rsoptctl {' '.join(args)} exited {result.returncode}: {result.stderr}"
        return json.loads(result.stdout)

    def run(self, config: Path, *extra: str) -> dict[str, Any]:
        """Submit, wait for the end, and return the final status (any final state)."""
        result = self.ctl("submit", str(config), "--wait", "--json", *extra, check=False)
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)

    def results(self, run_id: int) -> list[dict[str, Any]]:
        return json.loads(self.ctl("results", str(run_id), "--format", "json").stdout)

    def wait_state(self, run_id: int, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.json("status", str(run_id))
            if status["state"] in states:
                return status
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not reach {states}: {status}")


@pytest.fixture
def short_tmp() -> Any:
    """Unix socket paths must stay under ~100 bytes: pytest's tmp_path can be too long."""
    path = Path(tempfile.mkdtemp(prefix="rsd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_tmp: Path) -> Any:
    d = Daemon(socket=short_tmp / "sock" / "rsoptd.sock", state_dir=short_tmp / "state", home=short_tmp, cores=2)
    d.start()
    yield d
    if d.process and d.process.poll() is None:
        d.stop()


@dataclass
class Project:
    """A folder holding a user's function file and the configs that use it."""

    root: Path

    def function(self, source: str, name: str = "functions.py") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(source))
        return path

    def config(self, function: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
               setup: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
               name: str = "config.yml", input_file: str = "functions.py") -> Path:
        code: dict[str, Any] = {
            "parameters": parameters if parameters is not None else {
                "x": {"min": 0.0, "max": 1.0, "start": 0.5, "samples": 3},
                "y": {"min": -1.0, "max": 1.0, "start": 0.0, "samples": 2},
            },
            "setup": {"input_file": input_file, "function": function, "execution_type": "serial", **(setup or {})},
        }
        if settings is not None:
            code["settings"] = settings
        opts = {"software": "mesh_scan", "nworkers": 2, **(options or {})}
        path = self.root / name
        path.write_text(yaml.safe_dump({"codes": [{"python": code}], "options": opts}, sort_keys=False))
        return path


@pytest.fixture
def project(short_tmp: Path) -> Project:
    root = short_tmp / "project"
    root.mkdir()
    return Project(root)


def processes_under(root: Path) -> dict[int, str]:
    """pid -> command line of every process whose working directory is inside `root`.

    Executors, forked evaluations and whatever a user's function starts work in the
    run directory, so this finds exactly one test's processes, whatever else runs."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found[int(entry.name)] = args
    return found


def executor_pids(root: Path) -> set[int]:
    """rsoptd executors (and their forked children) working under `root`."""
    return {pid for pid, args in processes_under(root).items() if "rsoptd.executor" in args}
