"""Project guidelines rendered from Markdown with no way for raw HTML or script links to get through."""
from __future__ import annotations

import re

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

# Link and image targets allowed through: web, mail, in-page and relative addresses. No javascript:,
# data:, vbscript: or anything else a browser would run.
SAFE_URL = re.compile(r"^(?:https?:|mailto:|#|/|\.{0,2}/|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)


class _DropUnsafeUrls(Treeprocessor):
    def run(self, root):
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is not None and not SAFE_URL.match(value.strip()):
                    del element.attrib[attribute]


class EscapeRawHtml(Extension):
    """Raw HTML in the source is shown as text (escaped), never passed through; unsafe URLs are dropped.
    (Python-Markdown's documented replacement for the removed safe_mode.)"""

    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_DropUnsafeUrls(md), "drop_unsafe_urls", 0)


def guidelines_html(text: str) -> str:
    """Markdown → HTML safe to insert into a page as is."""
    return markdown.markdown(text or "", extensions=[EscapeRawHtml(), "fenced_code", "tables", "sane_lists"],
                             output_format="html")
