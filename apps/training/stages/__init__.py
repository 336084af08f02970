"""A round's stages, one module each: select → search → pair → (review) → train → evaluate.

Each stage reads rows, calls an engine (workers/), writes results, and moves the round's state. Which stages a round
runs, in which state, by which Celery task and in what order is written once, in `apps.training.pipeline`; the
Celery tasks (workers/tasks.py), `run_round` and the warm-up all follow it.
"""
