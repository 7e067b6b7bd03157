"""The daemon's own config file, ``$XDG_CONFIG_HOME/rsoptd/config.toml``.

Loaded once at start (command-line flags win over it) and again on SIGHUP,
when what can change without a restart is applied and the rest is reported.
Every problem names its key: ``config.toml: cores: expected a positive integer, got 'x'``.

    cores = 8                 # job slots (default: the machine's cores)
    state_dir = "~/.local/state/rsoptd"
    socket = "/run/user/1000/rsoptd/rsoptd.sock"   # ignored under socket activation
    idle_exit = "10m"         # leave after this long with nothing to do (default: never)
    log_level = "info"
    retention = "90d"         # delete finished runs older than this (default: keep until rsoptctl rm/prune)

    [mpi_launcher]            # for parallel runs whose config names no options.mpi_launcher
    command = "mpiexec"
    args = ["--bind-to", "none"]
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsoptd import retention
from rsoptd.config import Launcher
from rsoptd.logs import LEVELS, configure, get_logger

if TYPE_CHECKING:
    from rsoptd.server import Daemon

log = get_logger()

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


class SettingsError(Exception):
    pass


@dataclass
class Settings:
    """What the file says, with command-line flags laid over it (``flags`` names those keys)."""

    cores: int | None = None
    state_dir: Path | None = None
    socket: Path | None = None
    idle_exit: float | None = None
    log_level: str = "info"
    retention: float | None = None  # seconds
    mpi_command: str | None = None
    mpi_args: list[str] = field(default_factory=list)
    path: Path | None = None
    given: set[str] = field(default_factory=set)  # keys the file sets
    flags: dict[str, Any] = field(default_factory=dict)  # keys the command line sets, which win

    @property
    def mpi_launcher(self) -> Launcher | None:
        """The daemon's default launcher, in the shape of an rsopt config's options.mpi_launcher."""
        if self.mpi_command is None and not self.mpi_args:
            return None
        return Launcher(self.mpi_command or "mpiexec", tuple(self.mpi_args))

    def with_flags(self, **flags: Any) -> Settings:
        given = {key: value for key, value in flags.items() if value is not None}
        return dataclasses.replace(self, flags=given, **given)


def machine_cores() -> int:
    return len(os.sched_getaffinity(0))


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "rsoptd" / "config.toml"


def parse_duration(value: Any) -> float:
    """'90s', '10m', '12h', '30d', '2w', or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        match = DURATION.match(value)
        if match:
            return float(match.group(1)) * UNITS[match.group(2) or "s"]
    raise ValueError(f"expected a duration such as '30d', '12h', '10m' or '90s', got {value!r}")


def load(path: Path | None = None, required: bool = False) -> Settings:
    """Read and check the file; a missing default file means all defaults."""
    path = path or default_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise SettingsError(f"{path}: no such file") from None
        return Settings(path=path)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    try:
        return _check(data, path)
    except _KeyError as exc:
        raise SettingsError(f"{path}: {exc.key}: {exc.message}") from None


class _KeyError(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message


def _check(data: dict[str, Any], path: Path) -> Settings:
    settings = Settings(path=path)
    mpi = data.get("mpi_launcher", {})
    known = {**TOP_LEVEL, "mpi_launcher": None}
    for key in data:
        if key not in known:
            raise _KeyError(key, f"unknown key; known keys: {', '.join(sorted(known))}")
    for key, check in TOP_LEVEL.items():
        if key in data:
            setattr(settings, key, _value(key, data[key], check))
            settings.given.add(key)
    if not isinstance(mpi, dict):
        raise _KeyError("mpi_launcher", f"expected a table ([mpi_launcher] with command and args), got {mpi!r}")
    for key in mpi:
        if key not in MPI:
            raise _KeyError(f"mpi_launcher.{key}", f"unknown key; known keys: {', '.join(sorted(MPI))}")
    for key, check in MPI.items():
        if key in mpi:
            setattr(settings, f"mpi_{key}", _value(f"mpi_launcher.{key}", mpi[key], check))
            settings.given.add(f"mpi_{key}")
    return settings


def _value(key: str, value: Any, check: Callable[[Any], Any]) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise _KeyError(key, str(exc)) from None


def _positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"expected a positive integer, got {value!r}")


def _absolute_path(value: Any) -> Path:
    if isinstance(value, str) and value:
        path = Path(os.path.expandvars(value)).expanduser()
        if path.is_absolute():
            return path
    raise ValueError(f"expected an absolute path (~ and $VARIABLES allowed), got {value!r}")


def _level(value: Any) -> str:
    if isinstance(value, str) and value.lower() in LEVELS:
        return value.lower()
    raise ValueError(f"expected one of {', '.join(LEVELS)}, got {value!r}")


def _optional_duration(value: Any) -> float | None:
    if value in ("never", "none"):
        return None
    return parse_duration(value)


def _command(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"expected a command name or path, got {value!r}")


def _arguments(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


TOP_LEVEL: dict[str, Callable[[Any], Any]] = {
    "cores": _positive_int, "state_dir": _absolute_path, "socket": _absolute_path,
    "idle_exit": _optional_duration, "log_level": _level, "retention": _optional_duration,
}
MPI: dict[str, Callable[[Any], Any]] = {"command": _command, "args": _arguments}


def apply_mpi_default(settings: Settings) -> None:
    """Hand the default launcher to rsoptd.mpi (runs whose config names options.mpi_launcher keep theirs)."""
    from rsoptd import mpi  # imported here: rsoptd.mpi imports the executors, which need not load for a bad file

    mpi.DEFAULT_LAUNCHER = settings.mpi_launcher


def reload(daemon: Daemon) -> None:
    """SIGHUP: re-read the file, apply what can change now, log the rest (flags still win)."""
    current = daemon.settings
    daemon.notifier.reloading()
    try:
        from_file = load(current.path)
    except SettingsError as exc:
        log.error("config not reloaded", error=str(exc), keeps="the settings in use")
        daemon.notifier.ready(daemon.status_line())
        return
    new = from_file.with_flags(**current.flags)
    applied: dict[str, Any] = {}
    kept: dict[str, str] = {}
    if new.log_level != current.log_level:
        configure(new.log_level, hub=daemon.hub)
        applied["log_level"] = new.log_level
    cores, pool = new.cores or machine_cores(), daemon.ctx.pool
    if cores != pool.total:
        needed = max((run.spec.code.cores for run in daemon.manager.runs.values() if run.active and run.spec), default=1)
        if cores < needed:
            kept["cores"] = f"stays {pool.total}: an active run needs {needed} cores per evaluation"
            new.cores = current.cores
        else:
            pool.resize(cores)  # busy slots finish their work; new work sees the new size
            applied["cores"] = cores
    if new.idle_exit != current.idle_exit:
        daemon.idle_exit = new.idle_exit
        applied["idle_exit"] = new.idle_exit
    if new.retention != current.retention:
        applied["retention"] = new.retention
    if new.mpi_launcher != current.mpi_launcher:
        apply_mpi_default(new)
        applied["mpi_launcher"] = {"command": new.mpi_command, "args": new.mpi_args}  # for lanes started from now on
    for key in ("socket", "state_dir"):
        if getattr(new, key) != getattr(current, key):
            kept[key] = f"{getattr(new, key)} takes effect at the next restart"
            setattr(new, key, getattr(current, key))
    for key, value in current.flags.items():
        if key in from_file.given and getattr(from_file, key) != value:
            kept[key] = f"set on the command line ({value}); the file's {str(getattr(from_file, key))!r} is ignored"
    daemon.settings = new
    daemon._touch()
    if new.retention is not None or "retention" in applied:
        retention.schedule(daemon)  # prunes now, then hourly
    log.info("config reloaded", path=str(new.path), applied=applied, not_applied=kept)
    daemon.notifier.ready(daemon.status_line())
