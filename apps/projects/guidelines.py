"""Project guidelines rendered from Markdown with no way for raw HTML or script links to get through.

Two steps: Markdown → HTML with raw HTML in the source escaped (shown as text), then that HTML cleaned by nh3
(the Rust `ammonia` sanitiser) against an allow-list of the tags Markdown makes, their plain attributes, and
link schemes. nh3 parses the HTML as a browser does — entities decoded, `&colon;` or `&#106;` or tabs inside a
scheme included — so a `javascript:` link is recognised however it is spelled, which a pattern on the raw
text cannot promise.
"""

from __future__ import annotations

import markdown
import nh3
from markdown.extensions import Extension
from markdown.extensions.tables import TableExtension

# What Markdown (with fenced code, tables and lists) produces; anything else is dropped, its text kept.
ALLOWED_TAGS = {
    "a",
    "abbr",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}
# Link and image targets: web and mail addresses, and relative ones (in-page, same site). Nothing a browser runs
# (javascript:, vbscript:) or renders as a document of its own (data:).
URL_SCHEMES = {"http", "https", "mailto"}


class EscapeRawHtml(Extension):
    """Raw HTML in the source is shown as text (escaped), never passed through.
    (Python-Markdown's documented replacement for the removed safe_mode.)"""

    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


def sanitise_html(html: str) -> str:
    """HTML reduced to the allow-lists above: safe to insert into a page as is."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def guidelines_html(text: str) -> str:
    """Markdown → HTML safe to insert into a page as is."""
    html = markdown.markdown(
        text or "",
        output_format="html",
        extensions=[EscapeRawHtml(), "fenced_code", TableExtension(use_align_attribute=True), "sane_lists"],
    )
    return sanitise_html(html)
