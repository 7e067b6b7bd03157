"""One function per request type; each answers on the connection it is given."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from rsoptd import __version__, history, mpi, plots, protocol, retention
from rsoptd.config import Launcher
from rsoptd.errors import BadRequest, RsoptdError
from rsoptd.logs import LEVELS, Filter, to_json
from rsoptd.loops import loop_name
from rsoptd.settings import parse_duration

if TYPE_CHECKING:
    from rsoptd.server import Connection, Daemon

WATCH_INTERVAL = 0.2  # seconds between progress frames at most
LOGS_WRITE_EVENTS = 1000  # events a `logs -f` connection writes at once, at most
MONITOR_EVENTS = 50  # most log events a monitor frame carries
Handler = Callable[["Daemon", dict[str, Any], "Connection"], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler
    return register


def field(request: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    value = request.get(name, default)
    if value is ...:
        raise BadRequest(f"request field {name!r} is required")
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"request field {name!r} has the wrong type")
    return value


@command("ping")
async def ping(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    pool = daemon.ctx.pool
    await conn.reply({
        "version": __version__, "protocol": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
        "uptime": time.monotonic() - daemon.started, "cores": pool.total, "busy": pool.busy,
        "runs": daemon.manager.counts(), "loop": loop_name(), "socket": str(daemon.socket_path),
        "state_dir": str(daemon.state_dir), **health(daemon),
    })


def health(daemon: Daemon) -> dict[str, Any]:
    """What `rsoptctl info` adds to ping: the database, settings, systemd and MPI."""
    database = daemon.ctx.store.path
    size = sum(os.path.getsize(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")
               if os.path.exists(f"{database}{suffix}"))
    settings = daemon.settings
    return {
        "started_at": time.time() - (time.monotonic() - daemon.started), "database": str(database),
        "database_bytes": size, "config": str(settings.path) if settings.path else None,
        "config_found": bool(settings.path and settings.path.exists()), "log_level": settings.log_level,
        "retention": settings.retention, "idle_exit": daemon.idle_exit,
        "socket_activated": daemon.listen_socket is not None, "systemd_notify": daemon.notifier.enabled,
        "watchdog_interval": daemon.notifier.watchdog_interval, "mpi_launcher": mpi_launcher(daemon),
    }


def mpi_launcher(daemon: Daemon) -> dict[str, Any]:
    """The default MPI launcher and where rsoptd.mpi finds it on the daemon's PATH (runs use their own PATH)."""
    launcher = mpi.DEFAULT_LAUNCHER or Launcher("mpiexec")
    found: dict[str, Any] = {"command": launcher.command, "args": list(launcher.args), "path": None}
    try:
        found["path"] = mpi.launcher_argv(None, dict(os.environ))[0]
    except RsoptdError as exc:
        found["error"] = str(exc)
    return found


@command("submit")
async def submit(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    path = field(request, "config_path", str)
    if not os.path.isabs(path):
        raise BadRequest("config_path must be absolute")
    env = field(request, "env", dict, {}) or {}
    run, warnings = daemon.manager.submit(
        text=field(request, "config_text", str), config_path=path, cwd=field(request, "cwd", str, "/"),
        env={str(k): str(v) for k, v in env.items()}, overrides=field(request, "overrides", dict, {}) or {},
    )
    await conn.reply({"id": run.id, "run_dir": run.record.run_dir, "planned": run.record.planned, "warnings": warnings})


@command("list")
async def list_runs(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    await conn.reply([run.status() for run in daemon.manager.runs.values()])


@command("status")
async def status(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    await conn.reply(daemon.manager.get(request.get("run")).status())


@command("cancel")
async def cancel(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    run = daemon.manager.cancel(request.get("run"))
    if run.task is not None:
        await asyncio.shield(run.task)
    await conn.reply(run.status())


@command("resume")
async def resume(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    run = daemon.manager.resume(request.get("run"))
    await conn.reply(run.status())


@command("watch")
async def watch(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    """Stream the run's status whenever it changes, ending with its final status."""
    run = daemon.manager.get(request.get("run"))
    await conn.reply(run.status())
    closed = conn.closed()
    while run.live:
        changed = asyncio.ensure_future(run.changed())
        await asyncio.wait([changed, closed], return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        if closed.done():
            return
        await conn.send({"event": "progress", "status": run.status()})
        if run.task is not None:  # a frame at most every WATCH_INTERVAL, but the end as soon as the run is over
            await asyncio.wait([run.task, closed], timeout=WATCH_INTERVAL, return_when=asyncio.FIRST_COMPLETED)
    await conn.send({"event": "end", "status": run.status()})


@command("results")
async def results(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    run = daemon.manager.get(request.get("run"))
    fmt = field(request, "format", str, "json")
    if fmt not in history.FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; expected one of {', '.join(history.FORMATS)}")
    # spooled to a file in a thread, then sent in chunks: a million rows never sit in memory
    with tempfile.TemporaryFile(dir=daemon.state_dir) as spool:
        def write(rows: Any) -> int:
            history.WRITERS[fmt](spool, rows, run.names)
            return spool.tell()

        size = await daemon.ctx.store.read(run.id, write)
        await conn.reply({"format": fmt, "bytes": size, "count": run.done})
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            await conn.send_bytes(chunk)


@command("monitor")
async def monitor(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    """What `rsoptctl watch` draws, every `interval` seconds: the runs (one, or every run active
    since the monitor began) with the slots they hold and their best-so-far trace, the pool, and
    the last few log events; with a run, until it ends."""
    one = daemon.manager.get(request["run"]) if request.get("run") is not None else None
    interval = min(max(float(field(request, "interval", (int, float), 0.5)), 0.1), 10.0)
    limit = min(max(field(request, "events", int, 5), 0), MONITOR_EVENTS)
    seen: set[int] = set()

    def ended() -> bool:
        return one is not None and not one.live

    def frame(event: str) -> dict[str, Any]:
        if one is not None:
            runs = [one]
        else:
            seen.update(run.id for run in daemon.manager.runs.values() if run.active)
            runs = [daemon.manager.runs[i] for i in sorted(seen) if i in daemon.manager.runs]
        pool = daemon.ctx.pool
        return {"event": event, "time": time.time(), "cores": pool.total, "busy": pool.busy,
                "runs": [{**run.status(), "best_trace": run.best_trace} for run in runs],
                "events": recent_events(daemon, one.id if one else None, limit)}

    await conn.reply(frame("snapshot"))
    closed = conn.closed()
    while not ended():
        tick = asyncio.ensure_future(asyncio.sleep(interval))
        waits: list[asyncio.Future[Any]] = [closed, tick]
        if one is not None and one.task is not None:
            waits.append(one.task)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        tick.cancel()
        if closed.done():
            return
        if not ended():
            await conn.send(frame("snapshot"))
    await conn.send(frame("end"))


def recent_events(daemon: Daemon, run_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The last `limit` events at info level or above (of one run), newest last, as plain JSON values."""
    if not limit:
        return []
    events = daemon.hub.recent(Filter(run_id=run_id, level=LEVELS["info"]), limit)
    return [{k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in e.items()} for e in events]


@command("plot")
async def plot(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    """A picture of the run drawn here (matplotlib, in a thread); the client gets the file's bytes."""
    run = daemon.manager.get(request.get("run"))
    image, meta = await plots.plot(run, daemon.ctx.store, field(request, "kind", str, None),
                                   field(request, "format", str, "png"))
    await conn.reply(meta)
    await conn.send_bytes(image)


@command("logs")
async def logs(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    level = field(request, "level", str, "debug")
    if level not in LEVELS:
        raise BadRequest(f"unknown level {level!r}")
    run_id = request.get("run")
    if run_id is not None:
        run_id = daemon.manager.get(run_id).id
    filter = Filter(run_id=run_id, sim_id=field(request, "sim", int, None), level=LEVELS[level])
    follow = bool(request.get("follow"))
    subscriber = daemon.hub.subscribe(filter) if follow else None
    try:
        recent = daemon.hub.recent(filter, field(request, "limit", int, 200) or 0)
        await conn.reply({"follow": follow})
        for event in recent:
            await conn.send_line(to_json(event))
        closed = conn.closed()
        while subscriber is not None:
            get = asyncio.ensure_future(subscriber.queue.get())
            await asyncio.wait([get, closed], return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                return
            if subscriber.dropped:
                await conn.send_line(to_json({"event": "subscriber dropped events", "level": "warning", "count": subscriber.dropped}))
                subscriber.dropped = 0
            lines = [to_json(get.result())]
            while len(lines) < LOGS_WRITE_EVENTS and not subscriber.queue.empty():  # what is queued, in one write:
                lines.append(to_json(subscriber.queue.get_nowait()))  # one event per loop turn falls behind a scan
            subscriber.sending_since = time.monotonic()  # see Subscriber.stalled
            await conn.send_line("\n".join(lines))
            subscriber.sending_since = None
    finally:
        if subscriber is not None:
            daemon.hub.unsubscribe(subscriber)


@command("shutdown")
async def shutdown(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    await conn.reply({"pid": os.getpid()})
    daemon.request_exit("shutdown requested by a client")


@command("rm")
async def remove(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    """Delete finished runs' rows (all or none); their run directories stay."""
    ids = field(request, "runs", list)
    await conn.reply(retention.remove(daemon, [daemon.manager.get(run_id) for run_id in ids]))


@command("prune")
async def prune(daemon: Daemon, request: dict[str, Any], conn: Connection) -> None:
    try:
        older_than = parse_duration(field(request, "older_than", (str, int, float)))
    except ValueError as exc:
        raise BadRequest(f"older_than: {exc}") from None
    await conn.reply(retention.prune(daemon, older_than, dry_run=bool(request.get("dry_run"))))
