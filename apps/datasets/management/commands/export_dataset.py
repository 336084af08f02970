"""`export_dataset --project NAME --snapshot ID|latest --format trl|openai|sharegpt [--span fragment|completion]
[--complete] --output PATH|-`: a snapshot as JSON Lines (docs/exports.md)."""

import hashlib
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.datasets.completion import CompletionStats
from apps.datasets.models import DatasetSnapshot
from apps.datasets.rows import FORMATS, SPANS
from apps.datasets.selectors import snapshot_latest
from apps.datasets.services import snapshot_export
from apps.projects.commands import project_or_error


class Command(BaseCommand):
    help = "Write a dataset snapshot as JSON Lines (trl, openai or sharegpt rows); the same bytes every time."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--snapshot", required=True, help="Snapshot id, or `latest`.")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument(
            "--span",
            default="fragment",
            choices=SPANS,
            help="trl only: the shared prefix in the prompt (fragment) or in both completions.",
        )
        parser.add_argument(
            "--complete",
            action="store_true",
            help="Complete each side that stops mid-answer by its best finished rollout in the search "
            "tree, so every chosen/rejected is a whole answer (rows that cannot be are left out "
            "and counted).",
        )
        parser.add_argument("--output", required=True, help="File to write, or - for stdout.")

    def handle(self, *args, **opts):
        project = project_or_error(opts["project"])
        snapshot = self._snapshot(project, opts["snapshot"])
        stats = CompletionStats()
        try:
            lines = snapshot_export(snapshot, opts["format"], opts["span"], complete=opts["complete"], stats=stats)
        except (ValueError, OSError) as exc:  # no checkpoint, or its tokenizer cannot be loaded
            raise CommandError(f"snapshot #{snapshot.pk}: {exc}") from None

        bar = tqdm(
            total=snapshot.pair_count,
            unit="row",
            desc="export",
            file=self.stderr,
            disable=opts["verbosity"] == 0 or not self.stderr.isatty(),
        )
        digest, rows, size = hashlib.sha256(), 0, 0

        def counted(stream):
            nonlocal rows, size
            for line in stream:
                digest.update(line)
                rows, size = rows + 1, size + len(line)
                bar.update()
                yield line

        try:
            if opts["output"] == "-":
                self._write_stdout(counted(lines))
            else:
                self._write_file(Path(opts["output"]), counted(lines))
        finally:
            bar.close()
        self.stderr.write(
            f"exported {rows} rows ({size} bytes, sha256 {digest.hexdigest()}) of snapshot #{snapshot.pk} "
            f"{snapshot.name!r} (content hash {snapshot.content_hash}) as {opts['format']}"
            f"{' span=' + opts['span'] if opts['format'] == 'trl' else ''}"
            f"{' complete' if opts['complete'] else ''} to {opts['output']}"
        )
        if opts["complete"]:
            self.stderr.write(f"complete: {stats.summary()}")

    def _snapshot(self, project, ref: str) -> DatasetSnapshot:
        if ref == "latest":
            snapshot = snapshot_latest(project=project)
            if snapshot is None:
                raise CommandError(f"project {project.name!r} has no snapshots yet")
            return snapshot
        if not ref.isdigit():
            raise CommandError(f"--snapshot must be a snapshot id or `latest`, got {ref!r}")
        snapshot = DatasetSnapshot.objects.filter(project=project, pk=int(ref)).select_related("checkpoint").first()
        if snapshot is None:
            ids = DatasetSnapshot.objects.filter(project=project).order_by("-pk").values_list("pk", flat=True)[:10]
            known = ", ".join(f"#{i}" for i in ids) or "none"
            raise CommandError(f"no snapshot #{ref} in project {project.name!r} (its snapshots: {known})")
        return snapshot

    def _write_stdout(self, lines) -> None:
        out = getattr(self.stdout._out, "buffer", None)  # bytes as they are, when stdout is a real stream
        for line in lines:
            if out is not None:
                out.write(line)
            else:
                self.stdout.write(line.decode(), ending="")
        if out is not None:
            out.flush()

    def _write_file(self, path: Path, lines) -> None:
        """Written beside the target and renamed at the end: a failed export leaves no half file."""
        if not path.parent.is_dir():
            raise CommandError(f"{path.parent} is not a directory")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for line in lines:
                    out.write(line)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it an ordinary file's mode
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
