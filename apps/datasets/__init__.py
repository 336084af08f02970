"""Datasets: immutable snapshots of reviewed pairs and their export."""
