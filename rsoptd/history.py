"""A run's evaluations as rsopt-style history: records, CSV, JSON and .npy."""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from typing import Any, BinaryIO, Callable, Iterable, Iterator

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


def write_json(out: BinaryIO, rows: Iterable[Row], names: list[str]) -> None:
    """json.dumps(records, indent=1) plus a newline, written one record at a time."""
    separator = b"[\n "
    for record in _records(rows, names):
        out.write(separator + json.dumps(record, indent=1).replace("\n", "\n ").encode())
        separator = b",\n "
    out.write(b"[]\n" if separator == b"[\n " else b"\n]\n")


def _records(rows: Iterable[Row], names: list[str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield from records((row,), names)


def write_csv(out: BinaryIO, rows: Iterable[Row], names: list[str]) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["sim_id", *names, "f", "status"])
    for sim_id, x, f, status, *_ in rows:
        writer.writerow([sim_id, *(repr(v) for v in x), "" if math.isnan(f) else repr(f), status])
    text.flush()
    text.detach()  # the caller's stream stays open


def to_json(rows: Iterable[Row], names: list[str]) -> bytes:
    return _to_bytes(write_json, rows, names)


def to_csv(rows: Iterable[Row], names: list[str]) -> bytes:
    return _to_bytes(write_csv, rows, names)


CHUNK = 1024  # rows converted at a time: a history of any length costs one chunk of memory
NPY_MAGIC = b"\x93NUMPY\x01\x00"


def dtype(n_params: int) -> np.dtype:
    return np.dtype([
        ("sim_id", "i8"), ("x", "f8", (n_params,)), ("f", "f8"), ("sim_ended", "?"),
        ("sim_started_time", "f8"), ("sim_ended_time", "f8"), ("sim_worker", "i8"), ("status", "U9"),
    ])


def structured(rows: Iterable[Row], n_params: int) -> np.ndarray:
    """rsopt/libEnsemble-style history: sim_id, x, f, sim_ended, times, worker, status."""
    parts = list(_chunks(rows, n_params))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype(n_params))


def write_npy(out: BinaryIO, rows: Iterable[Row], n_params: int) -> None:
    """The same array as ``structured``, in .npy format, written chunk by chunk to a seekable
    file; the header, reserved at the start, gets the row count at the end."""
    start = out.tell()
    out.write(_npy_header(n_params, 0))
    count = 0
    for chunk in _chunks(rows, n_params):
        out.write(chunk.tobytes())
        count += len(chunk)
    end = out.tell()
    out.seek(start)
    out.write(_npy_header(n_params, count))
    out.seek(end)


def _npy_header(n_params: int, count: int) -> bytes:
    """Format 1.0, padded to a fixed length (room for a count of 20 digits, 64-byte aligned)."""
    descr = np.lib.format.dtype_to_descr(dtype(n_params))
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ({count},), }}"
    room = len(text) - len(str(count)) + 20  # the same for every count
    width = -(-(len(NPY_MAGIC) + 2 + room + 1) // 64) * 64 - len(NPY_MAGIC) - 2
    return NPY_MAGIC + struct.pack("<H", width) + (text.ljust(width - 1) + "\n").encode("latin1")


def _chunks(rows: Iterable[Row], n_params: int) -> Iterator[np.ndarray]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield _array(batch, n_params)
            batch = []
    if batch:
        yield _array(batch, n_params)


def _array(rows: list[Row], n_params: int) -> np.ndarray:
    array = np.zeros(len(rows), dtype=dtype(n_params))
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
    return _to_bytes(lambda out, rows, names: write_npy(out, rows, len(names)), rows, names)


def _to_bytes(write: Writer, rows: Iterable[Row], names: list[str]) -> bytes:
    buffer = io.BytesIO()
    write(buffer, rows, names)
    return buffer.getvalue()


Writer = Callable[[BinaryIO, Iterable[Row], list[str]], None]
FORMATS = {"json": to_json, "csv": to_csv, "npy": to_npy}
# the same, streamed into a file: the results command spools a run's history to a temporary
# file in a thread and sends it in chunks, so a million rows never sit in the daemon's memory
WRITERS: dict[str, Writer] = {
    "json": write_json, "csv": write_csv, "npy": lambda out, rows, names: write_npy(out, rows, len(names)),
}
