"""Snapshot services: freezing reviewed pairs (`freeze`), their rows out in a training format (`export`), and
Parquet files written by a worker (`files`). Callers import them from here."""

from .export import snapshot_export, snapshot_rows, trl_rows
from .files import snapshot_file_build, snapshot_file_check, snapshot_file_discard, snapshot_file_request
from .freeze import snapshot_content_hash, snapshot_filters_clean, snapshot_freeze

__all__ = [
    "snapshot_content_hash",
    "snapshot_export",
    "snapshot_file_build",
    "snapshot_file_check",
    "snapshot_file_discard",
    "snapshot_file_request",
    "snapshot_filters_clean",
    "snapshot_freeze",
    "snapshot_rows",
    "trl_rows",
]
