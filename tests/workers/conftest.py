"""Real Celery worker processes for tests, on the configured broker and the test database."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from itool_web.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the test database, which a worker process must use too."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Starts `celery worker` processes and stops (or kills) them."""

    def __init__(self, tmp_path: Path, media_root: Path):
        self.tmp_path, self.media_root = tmp_path, media_root
        self.procs: list[subprocess.Popen] = []

    def start(self, queues: str = "cpu", name: str = "w", env: dict | None = None) -> subprocess.Popen:
        env = {
            **(env or {}),
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(self.media_root),
            "CHECKPOINT_DIR": str(self.media_root / "checkpoints"),
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "GENERATION_THREADS": "1",
        }
        log = (self.tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "itool_web",
                "worker",
                "-Q",
                queues,
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "-n",
                f"{name}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = self.tmp_path / f"{name}.log"
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker's whole process group: no cleanup, no acknowledgement."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def workers(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CHECKPOINT_DIR = tmp_path / "media" / "checkpoints"
    celery_app.control.purge()  # nothing left over from an earlier run may reach these workers
    pool = Workers(tmp_path, settings.MEDIA_ROOT)
    yield pool
    pool.stop_all()
