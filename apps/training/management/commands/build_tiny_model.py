"""Build the tiny local policy from a project's own queries and register it as a checkpoint."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.catalog.models import Query
from apps.projects.models import Project
from apps.training.models import Checkpoint
from workers.llm.tiny import SIZE_PRESETS, TinyModelConfig, build_tiny_model, corpus_from_records, tiny_model_summary

DEFAULTS = TinyModelConfig()


class Command(BaseCommand):
    help = (
        "Train a BPE tokenizer on the project's train queries (tools, messages, answers), initialise a small "
        "Qwen2 from a seed, save both with save_pretrained to --output, and register a 'tiny' checkpoint."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--output", required=True, help="Folder to save the model and tokenizer in.")
        parser.add_argument("--size", choices=sorted(SIZE_PRESETS), default=DEFAULTS.size)
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="Weight initialisation seed.")
        parser.add_argument("--name", default="", help="Checkpoint name (default: tiny-SIZE-seedSEED).")

    def handle(self, *args, project, output, size, seed, name, **options):
        try:
            project_row = Project.objects.get(name=project)
        except Project.DoesNotExist:
            raise CommandError(f"unknown project {project!r}") from None
        # The eval split stays unseen, even by the tokenizer.
        queries = (
            Query.objects.filter(project=project_row, split=Query.Split.TRAIN)
            .prefetch_related("query_tools__tool")
            .order_by("pk")
        )
        if not queries.exists():
            raise CommandError(f"project {project!r} has no train queries to build a tokenizer from")
        records = (
            {
                "messages": q.messages,
                "tools": q.openai_tools(),
                "reference_output": q.reference_output,
            }
            for q in queries.iterator(chunk_size=1000)
        )
        output_dir = Path(output).resolve()
        build_tiny_model(corpus_from_records(records), output_dir, TinyModelConfig(size=size, seed=seed))
        summary = tiny_model_summary(output_dir)
        checkpoint, created = Checkpoint.objects.update_or_create(
            project=project_row,
            path=str(output_dir),
            defaults={
                "name": name or f"tiny-{size}-seed{seed}",
                "kind": Checkpoint.Kind.TINY,
                "config": {**summary, "train_queries": queries.count()},
            },
        )
        verb = "Registered" if created else "Updated"
        self.stdout.write(
            f"{verb} checkpoint #{checkpoint.pk} {checkpoint.name!r}: {summary['parameters']:,} parameters, "
            f"vocabulary {summary['vocab_size']:,}, saved in {output_dir}"
        )
