"""Catalog: tools, queries, importers and the environment generator."""
