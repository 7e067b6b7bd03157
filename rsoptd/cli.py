"""`rsoptd`: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rsoptd import __version__, loops, paths
from rsoptd.logs import LEVELS, configure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rsoptd", description="Run the rsoptd daemon in the foreground.")
    parser.add_argument("--socket", type=Path, default=None,
                        help=f"Unix socket path (default: ${paths.SOCKET_ENV} or $XDG_RUNTIME_DIR/rsoptd/rsoptd.sock)")
    parser.add_argument("--state-dir", type=Path, default=None, help="state directory (default: $XDG_STATE_HOME/rsoptd)")
    parser.add_argument("--cores", type=int, default=None, help="job slots (default: the machine's cores)")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help="exit after this long with no runs and no clients (used when autostarted)")
    parser.add_argument("--log-level", choices=list(LEVELS), default="info")
    parser.add_argument("--version", action="version", version=f"rsoptd {__version__}")
    args = parser.parse_args(argv)
    if args.cores is not None and args.cores < 1:
        parser.error("--cores must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hub = configure(args.log_level)
    from rsoptd.server import Daemon, StartupError

    cores = args.cores or len(os.sched_getaffinity(0))
    daemon_args = dict(
        socket_path=args.socket or paths.default_socket(), state_dir=args.state_dir or paths.default_state_dir(),
        cores=cores, idle_exit=args.idle_exit, hub=hub,
    )

    async def run() -> int:
        return await Daemon(**daemon_args).main()

    try:
        return loops.run(run)
    except StartupError as exc:
        print(f"rsoptd: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
