"""The loopback HTTP server of the load benchmarks (review, export): copies of one WSGI process, each a fixed
pool of threads, sharing a port through SO_REUSEPORT (the kernel spreads new connections over them), started
together and stopped together."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

SCRIPT = r"""
import sys
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import django
django.setup()
from django.core.wsgi import get_wsgi_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class PoolServer(WSGIServer):
    # A fixed pool of worker threads (as gunicorn's gthread): each keeps one database connection.
    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_port = sys.argv[3] == "shared"  # SO_REUSEPORT: the other copies listen on the same port

    def __init__(self, address, handler, workers):
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(workers)

    def process_request(self, request, client_address):
        self.pool.submit(self.work, request, client_address)

    def work(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


server = PoolServer(("127.0.0.1", int(sys.argv[1])), Quiet, int(sys.argv[2]))
server.set_app(get_wsgi_application())
print("ready", flush=True)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:<port>
    pids: list[int]
    processes: int
    threads: int  # per process


@contextmanager
def serve(*, processes: int = 1, threads: int = 16, env: dict | None = None) -> Iterator[Server]:
    """`processes` copies of the Django app (`threads` worker threads each) on one loopback port; stopped on exit.
    More than one needs SO_REUSEPORT (Linux, BSD): where it is missing, one process is started."""
    if not hasattr(socket, "SO_REUSEPORT"):
        processes = 1
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "itool_web.settings"),
        **(env or {}),
    }
    mode = "shared" if processes > 1 else "alone"
    started: list[subprocess.Popen] = []
    try:
        for _ in range(processes):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", SCRIPT, str(port), str(threads), mode],
                    cwd=Path(settings.BASE_DIR),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        for process in started:
            ready = process.stdout.readline().strip()  # django.setup() then "ready"
            if ready != "ready":
                raise RuntimeError(f"a server process did not start (said {ready!r})")
        yield Server(
            base=f"http://127.0.0.1:{port}", pids=[p.pid for p in started], processes=processes, threads=threads
        )
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
