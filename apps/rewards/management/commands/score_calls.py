"""`score_calls --input IN.jsonl [--output OUT.jsonl] [--rule strict|bfcl]`: check model outputs against their
ground truth."""

import json
import sys
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from rewards.checker import RULES, STRICT
from rewards.scoring import score_lines, summary


class Command(BaseCommand):
    help = (
        'Score JSON Lines {"id", "messages", "tools", "ground_truth", "output"} with the checker; '
        'write {"id", "valid", "deficiency", "detail", "reward", "calls"} per line and a summary on stderr.'
    )

    def add_arguments(self, parser):
        parser.add_argument("--input", required=True, help="JSON Lines file, or - for standard input.")
        parser.add_argument("--output", help="Where to write verdicts (default: standard output).")
        parser.add_argument(
            "--with-span", action="store_true", help="Also write the offending span and iTool's four-level grade."
        )
        parser.add_argument(
            "--rule",
            choices=RULES,
            default=STRICT,
            help="strict (default): a malformed call attempt is malformed on every query, no-call "
            "queries included; bfcl: BFCL's irrelevance rule, under which anything that does "
            "not decode as a call is a right 'no call' (for figures comparable with BFCL).",
        )

    def handle(self, *args, **opts):
        try:
            source = sys.stdin if opts["input"] == "-" else open(opts["input"], encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CommandError(f"cannot read {opts['input']}: {exc.strerror}") from None
        try:
            sink = open(opts["output"], "w", encoding="utf-8") if opts["output"] else self.stdout
        except OSError as exc:
            raise CommandError(f"cannot write {opts['output']}: {exc.strerror}") from None
        counts = Counter()
        with source:
            for row in score_lines(source, with_span=opts["with_span"], rule=opts["rule"]):
                counts[row["deficiency"] or "valid"] += 1
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        if sink is not self.stdout:
            sink.close()
        self.stderr.write(f"{summary(counts)} (rule: {opts['rule']})")
