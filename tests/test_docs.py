"""README.md and docs/ stay true to the tree: every relative link reaches a file (and a heading, when it names
one), and every command they show exists — `manage.py NAME` with each `--flag` written after it, and
`make TARGET`."""

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MANAGE = re.compile(r"manage\.py[ \t]+([a-z_]+)([^`\n|;&]*)")
MAKE = re.compile(r"(?<![\w-])make[ \t]+([a-z][\w-]*)")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", _text(page), re.M)}


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _code(text: str) -> str:
    """The page's code: fenced blocks and inline `spans`, one per line (commands are looked for only there)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return "\n".join([*fenced, *inline])


def _outside_code_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_reaches_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(_outside_code_fences(_text(page))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{_page_id(page)} has broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme_or_another_page():
    linked = set()
    for page in PAGES:
        for target in LINK.findall(_text(page)):
            if not re.match(r"[a-z]+:", target) and target.partition("#")[0]:
                linked.add((page.parent / target.partition("#")[0]).resolve())
    orphans = [_page_id(p) for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs pages no page links to: {orphans}"


def _options(name: str) -> set[str]:
    parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
    return set(parser._option_string_actions)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_manage_command_shown_exists_with_its_flags(page):
    commands = get_commands()
    wrong = []
    for name, rest in MANAGE.findall(_code(_text(page))):
        if name not in commands:
            wrong.append(f"manage.py {name}: no such command")
            continue
        options = _options(name)
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
            if flag not in options:
                wrong.append(f"manage.py {name} {flag}: no such option")
    assert not wrong, f"{_page_id(page)} shows commands that do not exist:\n" + "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_make_target_shown_exists(page):
    targets = set(re.findall(r"^([a-z][\w-]*):", _text(ROOT / "Makefile"), re.M))
    missing = sorted({t for t in MAKE.findall(_code(_text(page))) if t not in targets})
    assert not missing, f"{_page_id(page)} shows make targets the Makefile lacks: {missing}"


def test_the_checks_catch_a_broken_link_an_unknown_command_and_a_wrong_flag(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n[gone](missing.md) [bad anchor](#nowhere) [ok](#title)\nmake sure of it\n"
        "`python manage.py no_such_command`\n```\npython manage.py run_round --project p --no-such-flag\n"
        "make nonesuch\n```\n"
    )
    links = [t for t in LINK.findall(_text(page))]
    assert links == ["missing.md", "#nowhere", "#title"]
    assert _anchors(page) == {"title"}
    found = MANAGE.findall(_code(_text(page)))
    assert sorted(name for name, _ in found) == ["no_such_command", "run_round"]
    assert MAKE.findall(_code(_text(page))) == ["nonesuch"]  # prose ("make sure") is not a command
    assert "no_such_command" not in get_commands()
    assert "--no-such-flag" not in _options("run_round") and "--project" in _options("run_round")
