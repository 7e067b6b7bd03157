"""`rsoptd`: run the daemon in the foreground."""

from __future__ import annotations

import argparse
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
    parser.add_argument("--log-level", choices=list(LEVELS), default=None, help="default: the config file's, else info")
    parser.add_argument("--config", type=Path, default=None,
                        help="daemon settings (default: $XDG_CONFIG_HOME/rsoptd/config.toml; flags win over it)")
    parser.add_argument("--version", action="version", version=f"rsoptd {__version__}")
    args = parser.parse_args(argv)
    if args.cores is not None and args.cores < 1:
        parser.error("--cores must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rsoptd import notify, settings

    try:
        config = settings.load(args.config, required=args.config is not None).with_flags(
            cores=args.cores, state_dir=args.state_dir, socket=args.socket, idle_exit=args.idle_exit,
            log_level=args.log_level)
        listen = notify.listen_socket()  # socket activation: serve on systemd's socket instead of binding one
    except (settings.SettingsError, notify.ActivationError) as exc:
        print(f"rsoptd: {exc}", file=sys.stderr)
        return 2  # a usage error: the unit's RestartPreventExitStatus=2 stops a restart loop
    hub = configure(config.log_level)
    settings.apply_mpi_default(config)
    from rsoptd.server import Daemon, StartupError

    daemon_args = dict(
        socket_path=Path(listen.getsockname()) if listen else config.socket or paths.default_socket(),
        state_dir=config.state_dir or paths.default_state_dir(), cores=config.cores or settings.machine_cores(),
        idle_exit=config.idle_exit, hub=hub, listen_socket=listen, settings=config,
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
