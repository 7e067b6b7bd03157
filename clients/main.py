"""`rsoptctl`: submit rsopt configs to rsoptd, follow, list, cancel and fetch runs.

Exit codes: 0 success, 1 the run failed or was cancelled, 2 usage or config
error, 3 daemon unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
TYPE_CHECKING = False  # typing costs ~2 ms of every command's start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Callable

from rsoptd import protocol
from rsoptctl import render
from rsoptctl.connection import RequestFailed, Unreachable, environment, open_connection, request

USAGE_CODES = {protocol.CONFIG_ERROR, protocol.BAD_REQUEST, protocol.NOT_FOUND, protocol.CONFLICT, protocol.UNSUPPORTED}


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.socket = args.socket

    def call(self, op: str, autostart: bool = True, **fields: Any) -> Any:
        return request(self.socket, {"op": op, **fields}, autostart=autostart and not self.args.no_autostart)

    def output(self, data: Any, text: Callable[[Any], str]) -> None:
        print(json.dumps(data, indent=1) if getattr(self.args, "json", False) else text(data))


# -- commands --------------------------------------------------------------


def submit(client: Client, config: str, overrides: dict[str, Any] | None = None, wait: bool = False) -> int:
    path = Path(config).expanduser().resolve()
    try:
        text = path.read_text()
    except OSError as exc:
        raise RequestFailed(protocol.CONFIG_ERROR, f"cannot read {config}: {exc.strerror or exc}") from None
    data = client.call("submit", config_path=str(path), config_text=text, cwd=os.getcwd(),
                       env=environment(), overrides=overrides or {})
    for warning in data["warnings"]:
        print(f"rsoptctl: {warning}", file=sys.stderr)
    if not wait:
        client.output(data, lambda d: str(d["id"]))
        return protocol.EXIT_OK
    if not client.args.json:
        print(f"run {data['id']}: {data['planned']} points, run directory {data['run_dir']}", file=sys.stderr)
    return follow(client, data["id"])


def follow(client: Client, run: Any) -> int:
    """Stream a run's progress until it ends; the exit code tells how it ended."""
    conn = open_connection(client.socket, autostart=False)
    status: dict[str, Any] = {}
    line = render.ProgressLine(sys.stderr)
    try:
        conn.send({"op": "watch", "run": run})
        status = conn.reply()
        line.show(status)
        for frame in conn.frames():
            status = frame["status"]
            line.show(status)
            if frame.get("event") == "end":
                break
    except KeyboardInterrupt:
        line.done()
        print(f"rsoptctl: stopped following; run {status.get('id', run)} goes on (rsoptctl cancel {status.get('id', run)} ends it)", file=sys.stderr)
        return 130
    finally:
        conn.close()
    line.done()
    client.output(status, render.status)
    return protocol.EXIT_OK if status.get("state") == "completed" else protocol.EXIT_RUN_FAILED


def cmd_submit(client: Client) -> int:
    return submit(client, client.args.config, wait=client.args.wait)


def cmd_sample(client: Client) -> int:
    args = client.args
    overrides = {"software": "start", "batch_size": args.n} if args.kind == "start" else None
    return submit(client, args.config, overrides, wait=True)


def cmd_optimize(client: Client) -> int:
    return submit(client, client.args.config, wait=True)


def cmd_list(client: Client) -> int:
    client.output(client.call("list"), render.run_table)
    return protocol.EXIT_OK


def cmd_status(client: Client) -> int:
    data = client.call("status", run=client.args.run)
    client.output(data, render.status)
    return protocol.EXIT_RUN_FAILED if data["state"] in ("failed", "cancelled", "interrupted") else protocol.EXIT_OK


def cmd_cancel(client: Client) -> int:
    client.output(client.call("cancel", run=client.args.run), render.status)
    return protocol.EXIT_OK


def cmd_resume(client: Client) -> int:
    data = client.call("resume", run=client.args.run)
    if client.args.wait:
        return follow(client, data["id"])
    client.output(data, render.status)
    return protocol.EXIT_OK


def cmd_results(client: Client) -> int:
    args = client.args
    if args.format == "npy" and args.output is None and sys.stdout.isatty():
        raise RequestFailed(protocol.BAD_REQUEST, "npy is binary: give -o FILE or redirect stdout")
    conn = open_connection(client.socket, autostart=not args.no_autostart)
    try:
        conn.send({"op": "results", "run": args.run, "format": args.format})
        meta = conn.reply()
        out = open(args.output, "wb") if args.output else sys.stdout.buffer
        try:
            for chunk in conn.read_bytes(meta["bytes"]):
                out.write(chunk)
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
    finally:
        conn.close()
    if args.output:
        print(f"{meta['count']} evaluations written to {args.output}", file=sys.stderr)
    return protocol.EXIT_OK


def cmd_logs(client: Client) -> int:
    args = client.args
    conn = open_connection(client.socket, autostart=not args.no_autostart)
    try:
        conn.send({"op": "logs", "run": args.run, "sim": args.sim, "level": args.level,
                   "follow": args.follow, "limit": args.lines})
        conn.reply()
        for event in conn.frames():
            print(json.dumps(event) if args.json else render.log_line(event), flush=True)
    except KeyboardInterrupt:
        return protocol.EXIT_OK
    finally:
        conn.close()
    return protocol.EXIT_OK


def cmd_watch(client: Client) -> int:
    from rsoptctl import watch

    args = client.args
    return watch.main(client.socket, args.run, args.interval, autostart=not args.no_autostart, as_json=args.json)


PLOT_KINDS = ("history", "slice", "heatmap", "scatter", "parallel")  # rsoptd.plots.KINDS
PLOT_FORMATS = ("png", "svg", "pdf")


def cmd_plot(client: Client) -> int:
    """The daemon draws the picture (matplotlib lives there); this writes the bytes it sends."""
    args = client.args
    fmt = Path(args.output).suffix.lower().lstrip(".") if args.output else "png"
    if fmt not in PLOT_FORMATS:
        raise RequestFailed(protocol.BAD_REQUEST, f"-o {args.output}: the name must end in .png, .svg or .pdf")
    conn = open_connection(client.socket, autostart=not args.no_autostart)
    try:
        conn.send({"op": "plot", "run": args.run, "kind": args.kind, "format": fmt})
        meta = conn.reply()
        image = b"".join(conn.read_bytes(meta["bytes"]))
    finally:
        conn.close()
    path = Path(args.output or f"run{meta['id']}-{meta['kind']}.{fmt}")
    try:
        path.write_bytes(image)
    except OSError as exc:
        raise RequestFailed(protocol.BAD_REQUEST, f"cannot write {path}: {exc.strerror or exc}") from None
    meta["path"] = str(path.resolve())
    client.output(meta, lambda m: (f"{path}: {m['kind']} of run {m['id']} ({m['state']}), {m['count']} evaluations, "
                                   f"{m['failed']} failed; drawn in {m['seconds']:.2f} s"))
    return protocol.EXIT_OK


def cmd_ping(client: Client) -> int:
    client.output(client.call("ping", autostart=False), render.ping)
    return protocol.EXIT_OK


def cmd_info(client: Client) -> int:
    client.output(client.call("ping", autostart=False), render.info)
    return protocol.EXIT_OK


def cmd_rm(client: Client) -> int:
    data = client.call("rm", runs=client.args.runs)
    client.output(data, render.removed)
    return protocol.EXIT_OK


def cmd_prune(client: Client) -> int:
    data = client.call("prune", older_than=client.args.older_than, dry_run=client.args.dry_run)
    client.output(data, render.removed)
    return protocol.EXIT_OK


def cmd_service(client: Client) -> int:
    from rsoptctl import service

    return service.main(client.args.action, now=client.args.now)


def cmd_shutdown(client: Client) -> int:
    data = client.call("shutdown", autostart=False)
    print(f"rsoptd (pid {data['pid']}) is shutting down", file=sys.stderr)
    return protocol.EXIT_OK


# -- arguments -------------------------------------------------------------


class _Skipped:
    """Stands for the parser of a command that was not named (see parser)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `only`, the subcommand of that name alone: building all of them
    costs ~5 ms (argparse's gettext look-ups), a sixth of a command's start-up."""
    from rsoptd.paths import default_socket

    p = argparse.ArgumentParser(prog="rsoptctl", description="Control rsoptd: submit rsopt configs and follow their runs.")
    p.add_argument("--socket", type=Path, default=default_socket(), help="the daemon's socket (default: $RSOPTD_SOCKET or the per-user runtime dir)")
    p.add_argument("--no-autostart", action="store_true", help="do not start a daemon when none answers")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[Client], int], help: str, json_flag: bool = True) -> Any:
        if only is not None and name != only:
            return _Skipped()
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(handler=handler)
        if json_flag:
            c.add_argument("--json", action="store_true", help="print JSON")
        return c

    c = command("submit", cmd_submit, "submit a config and print the run id")
    c.add_argument("config")
    c.add_argument("--wait", action="store_true", help="follow the run to its end")

    c = command("sample", cmd_sample, "rsopt-style: run a sampler config and wait for it")
    c.add_argument("kind", choices=["configuration", "start"])
    c.add_argument("config")
    c.add_argument("-n", type=int, default=1, help="with 'start': evaluate the start point this many times")

    c = command("optimize", cmd_optimize, "rsopt-style: run an optimizer config and wait for it")
    c.add_argument("kind", choices=["configuration"])
    c.add_argument("config")

    command("list", cmd_list, "list runs")
    for name, handler, help in (("status", cmd_status, "show a run"), ("cancel", cmd_cancel, "cancel a run"),
                                ("resume", cmd_resume, "evaluate the points a run did not finish")):
        c = command(name, handler, help)
        c.add_argument("run", help="run id, or 'last'")
        if name == "resume":
            c.add_argument("--wait", action="store_true", help="follow the run to its end")

    c = command("results", cmd_results, "write a run's evaluations", json_flag=False)
    c.add_argument("run", help="run id, or 'last'")
    c.add_argument("--format", choices=["csv", "json", "npy"], default="csv")
    c.add_argument("-o", "--output", help="file to write (default: standard output)")

    c = command("logs", cmd_logs, "print the daemon's log events, optionally following them")
    c.add_argument("run", nargs="?", help="only this run's events")
    c.add_argument("-f", "--follow", action="store_true")
    c.add_argument("--sim", type=int, help="only this sim_id's events")
    c.add_argument("--level", choices=["debug", "info", "warning", "error"], default="debug")
    c.add_argument("-n", "--lines", type=int, default=200, help="recent events to show first (0: all kept)")

    c = command("watch", cmd_watch, "a live view of a run (or of every active run) until it ends or Ctrl-C")
    c.add_argument("run", nargs="?", help="run id, or 'last' (default: every active run, one line each)")
    c.add_argument("--interval", type=float, metavar="SECONDS",
                   help="refresh period (default: 0.5 on a terminal, 5 otherwise)")

    c = command("plot", cmd_plot, "draw a run with matplotlib on the daemon's side (needs rsoptd[plot])")
    c.add_argument("run", help="run id, or 'last'")
    c.add_argument("-o", "--output", metavar="FILE", help="FILE.png, .svg or .pdf (default: runID-KIND.png)")
    c.add_argument("--kind", choices=PLOT_KINDS, help="default: history for an optimizer, slice for one "
                   "parameter, heatmap (mesh) or scatter for two, parallel coordinates for more")

    command("ping", cmd_ping, "check that the daemon answers")
    command("info", cmd_info, "show the daemon's health: version, uptime, slots, runs, database, MPI launcher")

    c = command("rm", cmd_rm, "delete finished runs from the daemon's database (run directories stay)")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run id, or 'last'")
    c = command("prune", cmd_prune, "delete finished runs that ended before a given age (run directories stay)")
    c.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 90m, 45s")
    c.add_argument("--dry-run", action="store_true", help="only list what would be deleted")

    c = command("service", cmd_service, "install or remove rsoptd as a systemd user service", json_flag=False)
    c.add_argument("action", choices=["install", "uninstall"])
    c.add_argument("--now", action="store_true", help="with install: daemon-reload and enable --now rsoptd.socket")
    command("shutdown", cmd_shutdown, "stop the daemon (runs in flight become interrupted)", json_flag=False)
    if only is not None and only not in sub.choices:
        return parser()  # not a command: the full parser says so, as usual
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(_command_named(argv)).parse_args(argv)
    client = Client(args)
    try:
        return args.handler(client)
    except Unreachable as exc:
        print(f"rsoptctl: {exc}", file=sys.stderr)
        return protocol.EXIT_UNREACHABLE
    except RequestFailed as exc:
        print(f"rsoptctl: {exc}", file=sys.stderr)
        return protocol.EXIT_USAGE if exc.code in USAGE_CODES else protocol.EXIT_RUN_FAILED
    except BrokenPipeError:
        return protocol.EXIT_OK


def _command_named(argv: list[str]) -> str | None:
    """The word after the global options: the subcommand, if it is one (see parser)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--socket" else 1
    return argv[i] if i < len(argv) else None


if __name__ == "__main__":
    sys.exit(main())
