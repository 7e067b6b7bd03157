"""Structured logs: one structlog pipeline, two sinks.

Every event becomes a dict (bound with run_id / sim_id through contextvars),
is kept in a short in-memory history, is offered to ``logs -f`` subscribers
through bounded queues (a slow subscriber loses events, never blocks the
daemon), and is written to stderr as one JSON object per line (prefixed with
its syslog priority when stderr is the journal; coloured text on a terminal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
HISTORY = 5000
QUEUE_SIZE = 10000
STALL_SECONDS = 0.05  # a subscriber whose socket has not taken a line for this long is stalled


@dataclass
class Filter:
    run_id: int | None = None
    sim_id: int | None = None
    level: int = 0

    def matches(self, event: dict[str, Any]) -> bool:
        if self.run_id is not None and event.get("run_id") != self.run_id:
            return False
        if self.sim_id is not None and event.get("sim_id") != self.sim_id:
            return False
        return LEVELS.get(event.get("level", "info"), 20) >= self.level


@dataclass(eq=False)  # hashable by identity: subscribers live in a set
class Subscriber:
    filter: Filter
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0
    sending_since: float | None = None  # set by the logs command while a send waits for the reader

    def stalled(self) -> bool:
        """Its reader stopped reading: a send has waited STALL_SECONDS, or its queue is full."""
        since = self.sending_since
        return self.queue.full() or (since is not None and time.monotonic() - since > STALL_SECONDS)

    def offer(self, event: dict[str, Any]) -> None:
        if not self.filter.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


class LogHub:
    def __init__(self) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.subscribers: set[Subscriber] = set()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor: copy each finished event to history and subscribers."""
        record = dict(event)
        self.history.append(record)
        for subscriber in self.subscribers:
            subscriber.offer(record)
        return event

    def accepting(self, run_id: int) -> bool:
        """Whether a subscriber would take a run's output lines (info events) now.  One following
        another run, or a stalled one (see Subscriber.stalled), would not: while no other wants
        them, evaluations skip reading their output's tail and no output events are made, so a
        reader that stops reading costs the scans nothing (it misses those lines, as it would
        once its queue filled)."""
        return any(s.filter.run_id in (None, run_id) and s.filter.level <= LEVELS["info"] and not s.stalled()
                   for s in self.subscribers)

    def subscribe(self, filter: Filter) -> Subscriber:
        subscriber = Subscriber(filter)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def recent(self, filter: Filter, limit: int) -> list[dict[str, Any]]:
        """The last `limit` matching events (all with 0), oldest first; stops once it has them."""
        if not limit:
            return [e for e in self.history if filter.matches(e)]
        found = []
        for event in reversed(self.history):
            if filter.matches(event):
                found.append(event)
                if len(found) == limit:
                    break
        return found[::-1]


def to_json(event: dict[str, Any]) -> str:
    return json.dumps(event, default=str)


# syslog priorities: with a "<N>" line prefix the journal files each line at its level
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def is_journal(stream: Any) -> bool:
    """True when `stream` is the journal: $JOURNAL_STREAM names its device and inode."""
    try:
        device, inode = (int(part) for part in os.environ["JOURNAL_STREAM"].split(":"))
        info = os.fstat(stream.fileno())
    except (KeyError, ValueError, OSError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def renderer(stream: Any) -> Any:
    """JSON lines with a priority prefix for the journal, colours for a person, plain JSON lines otherwise."""
    if is_journal(stream):
        def journal(logger: Any, method: str, event: dict[str, Any]) -> str:
            return f"<{PRIORITIES.get(event.get('level', 'info'), 6)}>{to_json(event)}"
        return journal
    if getattr(stream, "isatty", lambda: False)():
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer(default=str)


def configure(level: str = "info", hub: LogHub | None = None, stream: Any = None) -> LogHub:
    hub = hub or LogHub()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            hub,
            renderer(stream or sys.stderr),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    return hub


def get_logger() -> Any:
    return structlog.get_logger("rsoptd")
