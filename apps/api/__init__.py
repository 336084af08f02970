"""The REST API under /api/v1/: the same data and actions as the pages, with the same per-project rules."""
