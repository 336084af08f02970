"""Celery tasks (thin: ids in, services called) and the ML engines they drive (no Django imports)."""
