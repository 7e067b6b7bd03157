"""How rsoptctl shows runs, progress and log events to a person."""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing costs ~2 ms of every rsoptctl start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, TextIO

LOG_FIELDS_SHOWN_ELSEWHERE = {"event", "level", "timestamp", "run_id", "sim_id", "logger"}


def fmt_f(value: Any) -> str:
    return "-" if value is None else f"{value:.10g}"


def best(status: dict[str, Any]) -> str:
    b = status.get("best")
    if not b:
        return "-"
    x = ", ".join(f"{k}={v:.6g}" for k, v in b["x"].items())
    return f"{fmt_f(b['f'])} at sim {b['sim_id']} ({x})"


def status(s: dict[str, Any]) -> str:
    lines = [
        f"run {s['id']}: {s['state']}" + (f" ({s['message']})" if s.get("message") else ""),
        f"  config:      {s['config']}",
        f"  run dir:     {s['run_dir']}",
        f"  software:    {software(s)} ({s['mode']} mode)",
        f"  evaluations: {s['done']}/{planned(s)} done, {s['failed']} failed",
        f"  best f:      {best(s)}",
    ]
    if s.get("iteration") is not None:  # an optimizer's: evaluations it has been told
        lines.append(f"  iteration:   {s['iteration']}")
    return "\n".join(lines)


def software(s: dict[str, Any]) -> str:
    method = s.get("method")
    return s["software"] if method in (None, s["software"]) else f"{s['software']} {method}"


def planned(s: dict[str, Any]) -> str:
    return str(s["planned"] or "?")  # 0: an optimizer without sim_max


def run_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no runs"
    rows = [("ID", "STATE", "DONE", "FAILED", "BEST F", "CONFIG")]
    for r in runs:
        b = r.get("best")
        rows.append((str(r["id"]), r["state"], f"{r['done']}/{r['planned']}", str(r["failed"]),
                     fmt_f(b["f"]) if b else "-", r["config"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def ping(p: dict[str, Any]) -> str:
    runs = ", ".join(f"{n} {state}" for state, n in sorted(p["runs"].items())) or "none"
    return (f"rsoptd {p['version']} (pid {p['pid']}, {p['loop']}) up {p['uptime']:.0f} s; "
            f"slots {p['busy']}/{p['cores']} busy; runs: {runs}")


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and seconds % length == 0:
            return f"{seconds / length:.0f}{unit}"
    return f"{seconds:.0f}s"


def info(p: dict[str, Any]) -> str:
    runs = ", ".join(f"{n} {state}" for state, n in sorted(p["runs"].items())) or "none"
    mpi = p.get("mpi_launcher")
    if isinstance(mpi, dict):
        command = " ".join([mpi["command"], *mpi.get("args", [])])
        mpi = f"{command} ({mpi['path']})" if mpi.get("path") else f"{command}: not found on the daemon's PATH"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["started_at"])) if p.get("started_at") else "?"
    systemd = "socket-activated" if p.get("socket_activated") else "own socket"
    if p.get("systemd_notify"):
        watchdog = p.get("watchdog_interval")
        systemd += ", notifies systemd" + (f", watchdog ping every {watchdog:g} s" if watchdog else "")
    config = p.get("config") or "-"
    lines = [
        f"rsoptd {p['version']} (protocol {p['protocol']}), pid {p['pid']}, event loop {p['loop']}",
        f"  up:         {p['uptime']:.0f} s (since {started})",
        f"  slots:      {p['busy']}/{p['cores']} busy",
        f"  runs:       {runs}",
        f"  socket:     {p['socket']} ({systemd})",
        f"  state dir:  {p['state_dir']}",
        f"  database:   {p.get('database', '-')} ({size(p.get('database_bytes', 0))})",
        f"  config:     {config}{'' if p.get('config_found') else ' (absent: defaults)'}",
        f"  log level:  {p.get('log_level', '-')}; idle exit {duration(p.get('idle_exit'))}; "
        f"retention {duration(p.get('retention'))}",
        f"  MPI:        {mpi or 'none found'}",
    ]
    return "\n".join(lines)


def removed(r: dict[str, Any]) -> str:
    if r.get("would_remove") is not None and not r["removed"]:
        ids = r["would_remove"]
        return f"would remove runs {', '.join(map(str, ids))}" if ids else "nothing to remove"
    if not r["removed"]:
        return "nothing to remove"
    return (f"removed runs {', '.join(map(str, r['removed']))} ({r['evaluations']} evaluations); "
            "their run directories stay")


def log_line(event: dict[str, Any]) -> str:
    where = []
    if event.get("run_id") is not None:
        where.append(f"run {event['run_id']}")
    if event.get("sim_id") is not None:
        where.append(f"sim {event['sim_id']}")
    tag = f"[{' '.join(where)}] " if where else ""
    if event.get("event") == "output":
        return f"{event.get('timestamp', '')} {tag}{event.get('stream', 'stdout')}: {event.get('line', '')}"
    extra = " ".join(f"{k}={v}" for k, v in event.items() if k not in LOG_FIELDS_SHOWN_ELSEWHERE)
    return f"{event.get('timestamp', '')} {event.get('level', 'info'):<7} {tag}{event.get('event', '')} {extra}".rstrip()


class ProgressLine:
    """One line rewritten in place on a terminal; occasional lines otherwise."""

    def __init__(self, stream: TextIO, interval: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval
        self.last = 0.0
        self.shown = False

    def show(self, s: dict[str, Any]) -> None:
        iteration = "" if s.get("iteration") is None else f", iteration {s['iteration']}"
        text = (f"run {s['id']} {s['state']}: {s['done']}/{planned(s)} done, "
                f"{s['failed']} failed{iteration}, best f {best(s)}")
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.shown = True
        elif time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
