"""Curation: preference pairs and their review."""
