"""Plain-Python floors, each measured in a fresh lean interpreter:

    python -m rsoptd.bench.floors NAME N      # prints {"rate": calls per second} or {"seconds": ...}

Standard library only, so the floor's process is as small as plain Python gets; the
trivial function is the benchmark's, ``x * y``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable


def trivial(x: float, y: float) -> float:
    return x * y


def points(n: int) -> list[tuple[float, float]]:
    return [(i / n, 1.0 - i / n) for i in range(n)]


def process_pool_submit(n: int) -> float:
    """ProcessPoolExecutor(2), one submit() per call (no chunking)."""
    from concurrent.futures import ProcessPoolExecutor, wait

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(trivial, [0.0, 1.0], [0.0, 1.0]))  # workers started before the clock
        started = time.perf_counter()
        wait([pool.submit(trivial, x, y) for x, y in points(n)])
        return n / (time.perf_counter() - started)


def process_pool_map(n: int) -> float:
    """ProcessPoolExecutor(2).map(chunksize=50): the best a pool does with batching."""
    from concurrent.futures import ProcessPoolExecutor

    xs, ys = zip(*points(n))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(trivial, [0.0, 1.0], [0.0, 1.0]))
        started = time.perf_counter()
        list(pool.map(trivial, xs, ys, chunksize=50))
        return n / (time.perf_counter() - started)


def thread_pool(n: int) -> float:
    """ThreadPoolExecutor(2), one submit() per call."""
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        wait([pool.submit(trivial, x, y) for x, y in points(n)])
        return n / (time.perf_counter() - started)


def _two_at_a_time(n: int, start: Callable[[float, float], tuple[int, int, object]]) -> float:
    """Keep two children busy; each child evaluates one point and writes its result to a pipe."""
    todo = points(n)
    running: dict[int, tuple[int, object]] = {}  # pid -> (read end, a Popen kept alive so it never reaps)
    started = time.perf_counter()
    while todo or running:
        while todo and len(running) < 2:
            pid, fd, keep = start(*todo.pop())
            running[pid] = fd, keep
        pid, _ = os.wait()
        fd, _ = running.pop(pid)
        float(os.read(fd, 64))
        os.close(fd)
    return n / (time.perf_counter() - started)


def fork_per_call(n: int) -> float:
    """os.fork() per call, two at a time, from this lean process."""
    def start(x: float, y: float) -> tuple[int, int, object]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, repr(trivial(x, y)).encode())
            os._exit(0)
        os.close(write)
        return pid, read, None

    return _two_at_a_time(n, start)


def fresh_interpreter(n: int) -> float:
    """A new `python -c` per call, two at a time."""
    import subprocess

    def start(x: float, y: float) -> tuple[int, int, object]:
        read, write = os.pipe()
        process = subprocess.Popen([sys.executable, "-c", f"print({x!r} * {y!r})"], stdout=write)
        os.close(write)
        process.returncode = 0  # reaped by os.wait() above, never by subprocess
        return process.pid, read, process

    return _two_at_a_time(n, start)


def socket_round_trip(n: int) -> float:
    """One request/reply over a Unix socket pair, in seconds (median of n)."""
    import socket
    import statistics
    import threading

    a, b = socket.socketpair()

    def echo() -> None:
        while data := b.recv(4096):
            b.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        a.sendall(b'{"op":"ping"}\n')
        a.recv(4096)
        times.append(time.perf_counter() - started)
    a.close()
    return statistics.median(times)


RATES = {f.__name__: f for f in (process_pool_submit, process_pool_map, thread_pool, fork_per_call, fresh_interpreter)}
SECONDS = {f.__name__: f for f in (socket_round_trip,)}


def main() -> None:
    name, n = sys.argv[1], int(sys.argv[2])
    if name in RATES:
        print(json.dumps({"rate": RATES[name](n)}))
    else:
        print(json.dumps({"seconds": SECONDS[name](n)}))


if __name__ == "__main__":
    main()
