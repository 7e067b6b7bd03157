"""The benchmark runs end to end at its smallest sizes and writes well-formed JSON (never timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_smoke_writes_a_row_per_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "rsoptd.bench", "--smoke", "--json", str(out)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["meta"]["mode"] == "smoke"
    names = [row["name"] for row in data["rows"]]
    assert "worker throughput" in names and "scale" in names and "idle daemon" in names
    for row in data["rows"]:
        for series in row["series"].values():
            assert isinstance(series["values"], list)
            assert all(isinstance(v, (int, float)) for v in series["values"])
        for target in row["targets"]:
            assert target["op"] in (">=", "<=")
    assert "worker throughput" in result.stdout
