"""One exception tree; each error carries the protocol code it turns into."""

from __future__ import annotations

from rsoptd import protocol


class RsoptdError(Exception):
    code = protocol.INTERNAL


class ConfigError(RsoptdError):
    """A config that cannot run; ``path`` names the offending key."""

    code = protocol.CONFIG_ERROR

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


class BadRequest(RsoptdError):
    code = protocol.BAD_REQUEST


class NotFound(RsoptdError):
    code = protocol.NOT_FOUND


class Conflict(RsoptdError):
    code = protocol.CONFLICT


class Unsupported(RsoptdError):
    code = protocol.UNSUPPORTED


class ExecutorDied(RsoptdError):
    """An executor process ended while it owed results."""

    def __init__(self, returncode: int | None, detail: str = "") -> None:
        self.returncode = returncode
        super().__init__(describe_exit(returncode) + (f": {detail}" if detail else ""))


def describe_exit(returncode: int | None) -> str:
    import signal

    if returncode is None:
        return "process ended"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"process killed by {name}"
    return f"process exited with status {returncode}"
