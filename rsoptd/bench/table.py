"""Series of repeated measurements, the targets they are held to, and the table and JSON of them."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Series:
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclass
class Target:
    """`numerator / denominator` (or the numerator alone, when no denominator) compared with `bound`."""

    text: str  # as the issue states it, e.g. ">= 2x the executor floor"
    numerator: str
    denominator: str | None
    op: str  # ">=" or "<="
    bound: float
    ratio: float | None = None
    met: bool | None = None

    def judge(self, series: dict[str, Series]) -> None:
        top = series[self.numerator].median
        bottom = series[self.denominator].median if self.denominator else 1.0
        if top is None or not bottom:
            return
        self.ratio = top / bottom
        self.met = self.ratio >= self.bound if self.op == ">=" else self.ratio <= self.bound


@dataclass
class Row:
    name: str
    series: dict[str, Series] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, label: str, unit: str, note: str = "") -> Series:
        self.series[key] = Series(label, unit, note=note)
        return self.series[key]

    def record(self, key: str, value: float) -> None:
        self.series[key].values.append(value)

    def judge(self) -> None:
        for target in self.targets:
            target.judge(self.series)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render(rows: list[Row]) -> str:
    lines = [f"{'row':18} {'measurement':58} {'median':>10} {'min-max':>19} {'unit':8}", "-" * 116]
    for row in rows:
        name = row.name
        for s in row.series.values():
            span = f"{_number(min(s.values))}-{_number(max(s.values))}" if s.values else "skipped"
            label = s.label + (f" [{s.note}]" if s.note and not s.values else "")
            lines.append(f"{name:18} {label[:58]:58} {_number(s.median):>10} {span:>19} {s.unit:8} n={len(s.values)}")
            name = ""
        for t in row.targets:
            verdict = "n/a" if t.met is None else ("ok" if t.met else "MISSED")
            lines.append(f"{'':18}   => {t.text[:52]:52} {_number(t.ratio):>10} {'target ' + t.op + ' ' + _number(t.bound):>19} {verdict}")
        for note in row.notes:
            lines.append(f"{'':18}   note: {note}")
    return "\n".join(lines)


def to_json(rows: list[Row], meta: dict[str, Any]) -> str:
    def row_dict(row: Row) -> dict[str, Any]:
        series = {key: {**asdict(s), "median": s.median, "min": min(s.values, default=None),
                        "max": max(s.values, default=None)} for key, s in row.series.items()}
        return {"name": row.name, "series": series, "targets": [asdict(t) for t in row.targets], "notes": row.notes}

    return json.dumps({"meta": meta, "rows": [row_dict(r) for r in rows]}, indent=1, default=str)
