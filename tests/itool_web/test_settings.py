"""Settings come from the environment; with nothing set, the embedded default needs no server."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
from django.conf import settings
django.setup()
from django.db import connection
out = {"engine": settings.DATABASES["default"]["ENGINE"], "broker": settings.CELERY_BROKER_URL,
       "backend": settings.CELERY_RESULT_BACKEND, "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS,
       "secret": settings.SECRET_KEY, "media": str(settings.MEDIA_ROOT), "checkpoints": str(settings.CHECKPOINT_DIR)}
if out["engine"].endswith("sqlite3"):
    with connection.cursor() as cur:
        cur.execute("PRAGMA journal_mode"); out["journal"] = cur.fetchone()[0]
        cur.execute("PRAGMA busy_timeout"); out["busy_ms"] = cur.fetchone()[0]
print(json.dumps(out))
"""
CONFIG_VARS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "MEDIA_ROOT",
    "CHECKPOINT_DIR",
    "ITOOL_DATA_DIR",
)


def probe(tmp_path, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    base.update({"DJANGO_SETTINGS_MODULE": "itool_web.settings", "ITOOL_DATA_DIR": str(tmp_path), **env})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_default_is_sqlite_wal_and_a_serverless_broker(tmp_path):
    got = probe(tmp_path)
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["journal"] == "wal" and got["busy_ms"] >= 1000
    assert got["broker"] == "filesystem://" and got["backend"].startswith("file://")
    assert (tmp_path / "db.sqlite3").exists() and (tmp_path / "broker" / "queue").is_dir()
    assert got["debug"] is False
    # a secret key is generated once and kept
    assert len(got["secret"]) >= 40 and probe(tmp_path)["secret"] == got["secret"]


def test_environment_selects_postgres_and_redis(tmp_path):
    got = probe(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
        SECRET_KEY="s" * 50,
        DEBUG="1",
        ALLOWED_HOSTS="itool.example.org,127.0.0.1",
        MEDIA_ROOT=str(tmp_path / "m"),
        CHECKPOINT_DIR=str(tmp_path / "c"),
    )
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["broker"] == got["backend"] == "redis://127.0.0.1:6379/3"
    assert got["secret"] == "s" * 50 and got["debug"] is True
    assert got["hosts"] == ["itool.example.org", "127.0.0.1"]
    assert got["media"] == str(tmp_path / "m") and got["checkpoints"] == str(tmp_path / "c")


def test_postgres_driver_is_psycopg3():
    import psycopg
    from django.db.backends.postgresql import base

    assert base.is_psycopg3 and psycopg.__version__.startswith("3.")
