"""A private rsoptd for the benchmark (temporary socket and state, 2 slots), driven through rsoptctl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
RSOPTD = shutil.which("rsoptd", path=str(BIN)) or "rsoptd"
RSOPTCTL = shutil.which("rsoptctl", path=str(BIN)) or "rsoptctl"
TICKS = os.sysconf("SC_CLK_TCK")

FUNCTIONS = '''
def trivial(x, y):
    return x * y

def chatty(x, y):
    print("sim", x, y)
    return x * y
'''


def mesh_config(samples: tuple[int, int], mode: str = "worker", function: str = "trivial", **options: Any) -> str:
    """An rsopt config: a mesh_scan over x and y of a function in functions.py."""
    opts = {"software": "mesh_scan", "nworkers": 2, **options}
    return textwrap.dedent(f"""
        codes:
          - python:
              parameters:
                x: {{min: 0, max: 1, start: 0, samples: {samples[0]}}}
                y: {{min: 0, max: 1, start: 0, samples: {samples[1]}}}
              setup: {{input_file: functions.py, function: {function}, execution_type: serial, serial_python_mode: {mode}}}
        options: {json.dumps(opts)}
        """)


class BenchDaemon:
    def __init__(self, work: Path, cores: int = 2) -> None:
        self.work = work
        self.home = Path(tempfile.mkdtemp(prefix="rsd-b-"))  # short: Unix socket paths must stay under ~100 bytes
        self.socket = self.home / "rsoptd.sock"
        self.env = dict(os.environ, RSOPTD_SOCKET=str(self.socket), XDG_STATE_HOME=str(self.home / "xdg"),
                        XDG_CONFIG_HOME=str(self.home / "xdg-config"))
        self.cores = cores
        self.process: subprocess.Popen[bytes] | None = None
        self._configs = 0
        (work / "functions.py").write_text(FUNCTIONS)

    def __enter__(self) -> BenchDaemon:
        self.process = subprocess.Popen(
            [RSOPTD, "--socket", str(self.socket), "--state-dir", str(self.home / "state"), "--cores", str(self.cores)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.work / "rsoptd.stderr", "ab"))
        deadline = time.monotonic() + 30
        while self.ctl("ping", check=False).returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rsoptd did not start; see {self.work / 'rsoptd.stderr'}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([RSOPTCTL, "--no-autostart", *args], env=self.env, capture_output=True, text=True,
                                cwd=self.work)
        if check and result.returncode:
            raise RuntimeError(f"rsoptctl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def write_config(self, text: str) -> Path:
        self._configs += 1
        path = self.work / f"config-{self._configs}.yml"
        path.write_text(text)
        return path

    def run(self, text: str) -> dict[str, Any]:
        """Submit a config, wait for its end, return the final status (a run that did not complete raises)."""
        path = self.write_config(text)
        status = json.loads(self.ctl("submit", str(path), "--wait", "--json", check=False).stdout)
        if status.get("state") != "completed":
            raise RuntimeError(f"run {status.get('id')} ended {status.get('state')}: {status.get('message')}")
        return status

    def results(self, run_id: int) -> list[dict[str, Any]]:
        return json.loads(self.ctl("results", str(run_id), "--format", "json").stdout)

    def results_npy(self, run_id: int) -> Any:
        import numpy as np

        path = self.work / f"results-{run_id}.npy"
        self.ctl("results", str(run_id), "--format", "npy", "-o", str(path))
        array = np.load(path)
        path.unlink()
        return array

    # -- the daemon's process, from /proc --

    def rss_mb(self, field: str = "VmRSS") -> float:
        return status_kb(self.pid, field) / 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []
