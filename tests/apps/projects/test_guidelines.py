"""Guidelines Markdown: links and HTML sanitised after entity decoding (what a browser will follow), on the
guidelines page and in a pair page's Guidelines box; NUL characters refused when saving."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from apps.projects.guidelines import guidelines_html
from tests.factories import MembershipFactory, PairFactory, UserFactory

# Each spells a javascript:/data:/vbscript: link a browser would follow; the raw text hides the scheme from a
# pattern (entities, reference-style definitions, case, control characters, whitespace).
SCRIPT_LINKS = [
    "[v](javascript&colon;alert(document.domain))",
    "[v](&#106;avascript:alert(1))",
    "[v](javascript&#58;alert(1))",
    "[v](&#x6A;avascript&#x3A;alert(1))",
    "[v](javascript&Tab;:alert(1))",
    "[v](JaVaScRiPt:alert(1))",
    "[v](  javascript:alert(1))",
    "[v](\x01javascript:alert(1))",
    "[v][ref]\n\n[ref]: javascript&colon;alert(1)",
    "[v][ref]\n\n[ref]: <javascript:alert(1)>",
    "[v][]\n\n[v]: &#106;avascript:alert(1)",
    "![i](javascript&colon;alert(1))",
    "[v](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[v](vbscript:msgbox(1))",
    "<javascript:alert(1)>",
    '<a href="javascript:alert(1)">v</a>',
    "<svg onload=alert(1)>",
]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value or "" for name, value in attrs if name in ("href", "src", "action", "formaction")]


def followable_urls(page: str) -> list[str]:
    """The link and source URLs of a page as a browser reads them (an HTML parser: entities decoded), with
    control characters and whitespace dropped as the URL parser does before reading the scheme."""
    parser = _Links()
    parser.feed(page)
    return [re.sub(r"[\x00-\x20]", "", url).lower() for url in parser.urls]


@pytest.mark.parametrize("source", SCRIPT_LINKS)
def test_script_links_are_removed_however_they_are_spelled(source):
    out = guidelines_html(source)
    assert not [url for url in followable_urls(out) if url.startswith(("javascript:", "data:", "vbscript:"))], out
    assert "<svg" not in out and "<script" not in out and not re.search(r"<[^>]*\son\w+\s*=", out), out


def test_ordinary_markdown_still_renders():
    out = guidelines_html(
        "# Rules\n\nPrefer **exact** values, see [the docs](https://example.org/a?b=1&c=2), "
        "[the list](/projects/), [above](#rules) or [mail](mailto:team@example.org).\n\n"
        "| a | b |\n|:--|--:|\n| 1 | 2 |\n\n```\nx = 1\n```\n\n1. one\n2. two"
    )
    assert "<h1>Rules</h1>" in out and "<strong>exact</strong>" in out
    assert followable_urls(out) == ["https://example.org/a?b=1&c=2", "/projects/", "#rules", "mailto:team@example.org"]
    assert '<th align="left">a</th>' in out and "<pre><code>x = 1\n</code></pre>" in out and "<ol>" in out
    assert 'rel="noopener noreferrer nofollow"' in out


def test_raw_html_is_shown_as_text_not_run():
    out = guidelines_html("<script>alert(1)</script>\n\n<img src=x onerror=alert(1)> <b>bold</b>")
    assert "&lt;script&gt;" in out and "<script" not in out and "<img" not in out and "<b>" not in out


@pytest.fixture
def members(project):
    users = {}
    for role in ("annotator", "admin"):
        users[role] = UserFactory(username=role)
        MembershipFactory(project=project, user=users[role], role=role)
    return users


def test_a_script_link_saved_by_an_admin_reaches_no_member_as_a_link(client, project, members):
    client.force_login(members["admin"])
    page = client.get(reverse("projects:guidelines", args=[project.pk])).content.decode()
    read_version = re.search(r'name="read_version" value="([^"]*)"', page).group(1)
    source = "\n\n".join(SCRIPT_LINKS)
    response = client.post(
        reverse("projects:guidelines", args=[project.pk]),
        {"guidelines": source, "read_version": html.unescape(read_version)},
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.guidelines == source  # stored as written; made safe when rendered

    client.force_login(members["annotator"])
    pair = PairFactory(project=project)
    for url in (
        reverse("projects:guidelines", args=[project.pk]),
        reverse("curation:pair_focus", args=[project.pk, pair.pk]),
    ):
        page = client.get(url).content.decode()
        assert "alert(" in page  # the text is there …
        bad = [u for u in followable_urls(page) if u.startswith(("javascript:", "data:", "vbscript:"))]
        assert not bad, (url, bad)  # … but no link runs it


def test_guidelines_with_a_nul_character_are_refused(client, project, members):
    client.force_login(members["admin"])
    page = client.get(reverse("projects:guidelines", args=[project.pk])).content.decode()
    read_version = html.unescape(re.search(r'name="read_version" value="([^"]*)"', page).group(1))
    before = project.guidelines
    response = client.post(
        reverse("projects:guidelines", args=[project.pk]), {"guidelines": "# Rules\x00", "read_version": read_version}
    )
    assert response.status_code == 400 and "Null characters are not allowed" in response.content.decode()
    project.refresh_from_db()
    assert project.guidelines == before
