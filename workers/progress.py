"""The one progress-callback signature of the long jobs: `progress({"done": 3, "total": 10, ...})`.

`done` and `total` count the job's unit (queries, rows, bytes) and are cumulative, never increments, so a
caller can show the latest report as it is. Other keys add figures (a stage's name, a loss); the trainers
count their optimizer steps as `step` and `max_steps`, TRL's names.
"""

from collections.abc import Callable

Progress = Callable[[dict], None]
