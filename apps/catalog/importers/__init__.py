"""Importers: one module per source format, each turning a file into QuerySpec records."""

from __future__ import annotations

from .base import BaseImporter


def _registry() -> dict[str, type[BaseImporter]]:
    from .bfcl import BfclImporter
    from .ftrl import FtrlImporter
    from .openai import OpenAIImporter
    from .toolace import ToolAceImporter

    return {cls.name: cls for cls in (ToolAceImporter, BfclImporter, OpenAIImporter, FtrlImporter)}


FORMATS = ("toolace", "bfcl", "openai", "ftrl")


def get_importer(fmt: str) -> BaseImporter:
    registry = _registry()
    if fmt not in registry:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return registry[fmt]()
