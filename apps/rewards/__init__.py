"""Rewards' Django app: the `score_calls` management command over the checker in the top-level `rewards` package."""
