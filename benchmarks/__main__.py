"""`python -m benchmarks [name ...]`: run the benchmarks (all by default) against the configured database."""

import os
import sys

import django


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itool_web.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from benchmarks import (
        checker,
        export,
        generation,
        head_shapes,
        importer,
        mcts,
        mcts_overhead,
        review,
        sandbox,
        train,
        tree_writes,
    )

    suites = {
        "importer": importer.main,
        "checker": checker.main,
        "tree_writes": tree_writes.main,
        "generation": generation.main,
        "head_shapes": head_shapes.main,
        "mcts": mcts.main,
        "mcts_overhead": mcts_overhead.main,
        "review": review.main,
        "sandbox": sandbox.main,
        "train": train.main,
        "export": export.main,
    }
    for name in argv or list(suites):
        if name not in suites:
            sys.exit(f"unknown benchmark {name!r}; expected one of {', '.join(suites)}")
        print(f"== {name}")
        suites[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
