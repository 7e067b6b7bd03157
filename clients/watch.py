"""`rsoptctl watch [RUN]`: a live view of runs, redrawn in place about twice a second.

The daemon's `monitor` op sends a frame every interval (runs with the slots
they hold and a short best-so-far trace, the pool, the last log events); this
module only draws them.  Rates and ETAs come from the frames' own done counts
and times.  On a terminal the view is rewritten in place; anywhere else it
prints plain lines now and then.  Ctrl-C leaves the view and the run goes on.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections import deque
from typing import Any, TextIO

from rsoptd import protocol
from rsoptctl import render
from rsoptctl.connection import Unreachable, open_connection

SPARK = "▁▂▃▄▅▆▇█"
RATE_WINDOW = 5.0  # seconds of frames the evaluations-per-second figure averages over
PLAIN_INTERVAL = 5.0  # seconds between plain lines when stdout is not a terminal
EVENTS = 5


def main(socket: Any, run: str | None, interval: float | None, autostart: bool, as_json: bool,
         out: TextIO = sys.stdout) -> int:
    tty = out.isatty() and not as_json
    interval = interval or (0.5 if tty else PLAIN_INTERVAL)
    view: View = TerminalView(out, single=run is not None) if tty else PlainView(out, as_json)
    conn = open_connection(socket, autostart=autostart)
    frame: dict[str, Any] = {}
    try:
        conn.send({"op": "monitor", "run": run, "interval": interval, "events": EVENTS})
        frame = {"event": "snapshot", **conn.reply()}
        view.show(frame)
        for frame in conn.frames():
            view.show(frame)
            if frame.get("event") == "end":
                break
        else:
            raise Unreachable("the daemon closed the connection")
    except KeyboardInterrupt:
        view.close()
        if run is not None and frame.get("runs"):
            run_id = frame["runs"][0]["id"]
            print(f"rsoptctl: stopped watching; run {run_id} goes on (rsoptctl cancel {run_id} ends it)", file=sys.stderr)
        return protocol.EXIT_OK
    finally:
        view.close()
        conn.close()
    state = frame["runs"][0]["state"] if frame.get("runs") else "completed"
    return protocol.EXIT_OK if state == "completed" else protocol.EXIT_RUN_FAILED


# -- figures -----------------------------------------------------------------


class Rates:
    """Evaluations per second of each run over the last few seconds of frames."""

    def __init__(self) -> None:
        self.samples: dict[int, deque[tuple[float, int]]] = {}

    def add(self, frame: dict[str, Any]) -> None:
        for s in frame.get("runs", []):
            samples = self.samples.setdefault(s["id"], deque())
            samples.append((frame["time"], s["done"]))
            while len(samples) > 2 and frame["time"] - samples[0][0] > RATE_WINDOW:
                samples.popleft()

    def rate(self, s: dict[str, Any], now: float) -> float | None:
        samples = self.samples.get(s["id"])
        if s.get("state") == "running" and samples and samples[-1][0] - samples[0][0] >= 0.9:
            return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        started = s.get("started")
        if started is None or not s["done"]:
            return None
        end = s.get("ended") or now
        return s["done"] / max(end - started, 1e-3)  # whole-run average: at the start, and once ended


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def eta(s: dict[str, Any], rate: float | None) -> str:
    if s["state"] in protocol.FINAL_STATES:
        return "done"
    if not s["planned"] or not rate:
        return "-"
    return clock(max(0, s["planned"] - s["done"]) / rate)


def bar(s: dict[str, Any], width: int) -> str:
    planned = s["planned"] or max(s["done"], 1)
    ok = s["done"] - s["failed"]
    full = min(width, round(width * ok / planned))
    bad = min(width - full, math.ceil(width * s["failed"] / planned))
    return "[" + "█" * full + "▒" * bad + "░" * (width - full - bad) + "]"


def percent(s: dict[str, Any]) -> str:
    return f"{100 * s['done'] / s['planned']:3.0f}%" if s["planned"] else "   ?"


def sparkline(s: dict[str, Any], width: int) -> str:
    """Best f so far against evaluations done, as `width` block characters (lower is better)."""
    trace = [tuple(p) for p in s.get("best_trace") or []]
    if s.get("best"):
        trace.append((s["done"], s["best"]["f"]))
    if not trace or width < 1:
        return ""
    first, last = trace[0][0], max(trace[-1][0], trace[0][0] + 1)
    values, k = [], 0
    for c in range(width):
        position = first + (last - first) * (c + 1) / width
        while k + 1 < len(trace) and trace[k + 1][0] <= position:
            k += 1
        values.append(trace[k][1])
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    scale = (lambda v: math.log(v)) if lo > 0 and hi / lo > 1e3 else (lambda v: v)
    lo_s, hi_s = scale(lo), scale(hi)
    if hi_s <= lo_s:
        return SPARK[0] * width
    return "".join(SPARK[min(len(SPARK) - 1, int((scale(v) - lo_s) / (hi_s - lo_s) * len(SPARK)))] for v in values)


def run_line(s: dict[str, Any], rate: float | None, width: int = 20) -> str:
    b = s.get("best")
    speed = f"{rate:,.0f}/s" if rate is not None else "-"
    return (f"{s['id']:<4} {s['state']:<11} {bar(s, width)} {percent(s)}  {s['done']}/{render.planned(s)} done  "
            f"{s['failed']} failed  {speed}  ETA {eta(s, rate)}  slots {s.get('slots', 0)}  "
            f"best f {render.fmt_f(b['f']) if b else '-'}  {s['config']}")


def run_block(s: dict[str, Any], frame: dict[str, Any], rate: float | None, columns: int) -> list[str]:
    width = max(10, min(50, columns - 40))
    elapsed = None
    if s.get("started"):
        elapsed = (s.get("ended") or frame["time"]) - s["started"]
    speed = f"{rate:,.1f}" if rate is not None and rate < 100 else (f"{rate:,.0f}" if rate is not None else "-")
    lines = [
        f"run {s['id']} {s['state']}" + (f" ({s['message']})" if s.get("message") else "")
        + f" · {render.software(s)} ({s['mode']} mode) · {s['config']}",
        f"{bar(s, width)} {percent(s)}  {s['done']}/{render.planned(s)} done, {s['failed']} failed  ETA {eta(s, rate)}",
        f"{speed} evaluations/s · slots {s.get('slots', 0)} held (pool {frame['busy']}/{frame['cores']} busy)"
        f" · elapsed {clock(elapsed)}" + ("" if s.get("iteration") is None else f" · iteration {s['iteration']}"),
        f"best f {render.best(s)}",
    ]
    spark = sparkline(s, width)
    if spark:
        trace = s.get("best_trace") or []
        start = render.fmt_f(trace[0][1]) if trace else "-"
        lines.append(f"{spark}  best so far: {start} → {render.fmt_f(s['best']['f'])}")
    return lines


def event_line(event: dict[str, Any]) -> str:
    """render.log_line with the time of day only (2026-11-26T07:07:28.27Z -> 07:07:28)."""
    stamp = str(event.get("timestamp", ""))
    return render.log_line({**event, "timestamp": stamp[11:19]} if len(stamp) >= 19 else event)


# -- views -------------------------------------------------------------------


class View:
    def show(self, frame: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TerminalView(View):
    """Redraws the whole view in place: cursor up over the last drawing, rewrite, clear below."""

    def __init__(self, out: TextIO, single: bool) -> None:
        self.out = out
        self.single = single
        self.drawn = 0
        self.rates = Rates()
        self.closed = False

    def show(self, frame: dict[str, Any]) -> None:
        self.rates.add(frame)
        columns, rows = shutil.get_terminal_size()
        lines = self.lines(frame, columns)[: max(1, rows - 1)]
        text = "\033[?25l" if not self.drawn else f"\033[{self.drawn}F"
        text += "".join(line[: columns - 1] + "\033[K\n" for line in lines) + "\033[J"
        self.out.write(text)
        self.out.flush()
        self.drawn = len(lines)

    def lines(self, frame: dict[str, Any], columns: int) -> list[str]:
        runs = frame.get("runs", [])
        lines: list[str]
        if self.single and runs:
            s = runs[0]
            lines = run_block(s, frame, self.rates.rate(s, frame["time"]), columns)
        else:
            active = sum(1 for s in runs if s["state"] in ("queued", "running"))
            lines = [(f"rsoptd: slots {frame['busy']}/{frame['cores']} busy, {active} active run(s)"
                      f"    {time.strftime('%H:%M:%S', time.localtime(frame['time']))}    Ctrl-C to leave")]
            lines += [run_line(s, self.rates.rate(s, frame["time"])) for s in runs] or ["no active runs"]
        events = frame.get("events") or []
        if events:
            lines.append("last events:")
            lines += ["  " + event_line(e) for e in events]
        return lines

    def close(self) -> None:
        if not self.closed and self.drawn:
            self.out.write("\033[?25h")
            self.out.flush()
        self.closed = True


class PlainView(View):
    """Not a terminal: a line per run each frame, and each log event once."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.rates = Rates()
        self.printed: deque[str] = deque(maxlen=200)
        self.last: dict[int, str] = {}  # run id -> its last line, not repeated while nothing changes

    def show(self, frame: dict[str, Any]) -> None:
        if self.as_json:
            self.out.write(json.dumps(frame) + "\n")
            self.out.flush()
            return
        self.rates.add(frame)
        stamp = time.strftime("%H:%M:%S", time.localtime(frame["time"]))
        runs = frame.get("runs", [])
        for s in runs:
            line = run_line(s, self.rates.rate(s, frame["time"]), 10)
            if self.last.get(s["id"]) != line:
                self.last[s["id"]] = line
                self.out.write(f"{stamp} {line}\n")
        if not runs:
            self.out.write(f"{stamp} no active runs\n")
        for event in frame.get("events") or []:
            key = json.dumps(event, sort_keys=True)
            if key not in self.printed:
                self.printed.append(key)
                self.out.write(f"{stamp}   {event_line(event)}\n")
        self.out.flush()
