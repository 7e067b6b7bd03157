"""A run's evaluations as rsopt-style history: records, CSV, JSON and .npy."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Iterable

import numpy as np

Row = tuple[Any, ...]  # (sim_id, x, f, status, error, started, ended, worker), as Store.evaluations yields


def names(parameters_json: str) -> list[str]:
    return list(json.loads(parameters_json))


def records(rows: Iterable[Row], names: list[str]) -> list[dict[str, Any]]:
    return [
        {"sim_id": sim_id, "x": dict(zip(names, x)), "f": None if math.isnan(f) else f,
         "status": status, "error": error, "started": started, "ended": ended, "worker": worker}
        for sim_id, x, f, status, error, started, ended, worker in rows
    ]


def to_json(rows: Iterable[Row], names: list[str]) -> bytes:
    return json.dumps(records(rows, names), indent=1).encode() + b"\n"


def to_csv(rows: Iterable[Row], names: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sim_id", *names, "f", "status"])
    for sim_id, x, f, status, *_ in rows:
        writer.writerow([sim_id, *(repr(v) for v in x), "" if math.isnan(f) else repr(f), status])
    return buffer.getvalue().encode()


def structured(rows: Iterable[Row], n_params: int) -> np.ndarray:
    """rsopt/libEnsemble-style history: sim_id, x, f, sim_ended, times, worker, status."""
    rows = list(rows)
    dtype = [
        ("sim_id", "i8"), ("x", "f8", (n_params,)), ("f", "f8"), ("sim_ended", "?"),
        ("sim_started_time", "f8"), ("sim_ended_time", "f8"), ("sim_worker", "i8"), ("status", "U9"),
    ]
    array = np.zeros(len(rows), dtype=dtype)
    if not rows:
        return array
    sim_id, x, f, status, _error, started, ended, worker = zip(*rows)
    array["sim_id"] = sim_id
    array["x"] = np.array(x, dtype=float).reshape(len(rows), n_params)
    array["f"] = f
    array["status"] = status
    array["sim_ended"] = array["status"] != "cancelled"
    array["sim_started_time"] = [math.nan if t is None else t for t in started]
    array["sim_ended_time"] = [math.nan if t is None else t for t in ended]
    array["sim_worker"] = [w or 0 for w in worker]
    return array


def to_npy(rows: Iterable[Row], names: list[str]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, structured(rows, len(names)))
    return buffer.getvalue()


FORMATS = {"json": to_json, "csv": to_csv, "npy": to_npy}
