"""End-to-end fixtures: a real Chromium driven by Playwright against pytest-django's live server.

The live server is a thread of this process serving the test database, so the tests need `transactional_db`
(requested by `review_data`). Playwright's sync API keeps an asyncio event loop running in the main thread,
which makes Django refuse ORM calls there unless DJANGO_ALLOW_ASYNC_UNSAFE is set (the server thread is an
ordinary thread and is not affected).

Chromium: $CHROMIUM, else `chromium` / `chromium-browser` on PATH (Debian: `apt-get install chromium`;
`make setup` installs it when run as root). Without one the tests fail, saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # a step that waits longer has failed


def chromium_path() -> str | None:
    candidates = [
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


def wait_until(page, expression: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until a JavaScript expression is true in the page. Not page.wait_for_function: that evaluates its
    predicate with `new Function` inside the page, which the pages' Content-Security-Policy (no 'unsafe-eval')
    refuses; page.evaluate goes through DevTools, which the policy does not govern."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            if page.evaluate(expression):
                return
        except Error as error:  # a navigation replaced the page under the evaluation: ask the new one
            if "context was destroyed" not in str(error):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(25)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright is not installed: run `make setup` (requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        pytest.fail("no Chromium: install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chromium")
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def fast_passwords(settings):
    # settings are process-wide: the live server thread checks passwords with this hasher too
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class ReviewData:
    project: object
    other_project: object
    users: dict
    queue: list  # the pending pairs in the order the queue hands them out (smallest gap first)
    wrong_chosen: object  # a pending pair whose chosen fragment the checker says is a wrong value
    other_pair: object  # a pair of the project the annotator is not a member of
    tree: object = None
    extra: dict = field(default_factory=dict)


@pytest.fixture
def review_data(transactional_db, fast_passwords) -> ReviewData:
    """A project with an annotator, a second annotator, a reviewer and an admin (membership_set), four
    pending pairs with real checker verdicts, a pair whose chosen fragment is wrong (to edit), a search tree
    behind the first pair, and a second project none of them belongs to."""
    from apps.projects.services import membership_set
    from tests.factories import (
        PairFactory,
        ProjectFactory,
        QueryFactory,
        SearchTreeFactory,
        TreeNodeFactory,
        UserFactory,
    )

    project = ProjectFactory(
        name="e2e-project",
        description="Pairs for the browser tests.",
        guidelines="# Guidelines\n\nApprove a pair when the **chosen** call is right.",
    )
    users = {}
    for username, role in (
        ("annotator", "annotator"),
        ("second", "annotator"),
        ("reviewer", "reviewer"),
        ("admin", "admin"),
    ):
        users[username] = UserFactory(username=username)
        membership_set(project=project, user=users[username], role=role)

    query = QueryFactory(project=project)
    tree = SearchTreeFactory(project=project, query=query, node_count=4, simulations_done=8, valid_leaves=1)
    root = TreeNodeFactory(tree=tree, key="root", fragment="", visits=8, value_sum=2.0)
    parent = TreeNodeFactory(tree=tree, parent=root, key="p", fragment="[get_weather(", visits=5, value_sum=2.0)
    chosen = TreeNodeFactory(
        tree=tree,
        parent=parent,
        key="c",
        fragment="city='Paris')]",
        visits=3,
        value_sum=2.7,
        is_terminal=True,
        verdict={"valid": True},
        ordinal=0,
    )
    rejected = TreeNodeFactory(
        tree=tree,
        parent=parent,
        key="r",
        fragment="city='Lyon')]",
        visits=2,
        value_sum=0.4,
        is_terminal=True,
        verdict={"valid": False, "deficiency": "wrong_value"},
        ordinal=1,
    )
    queue = [
        PairFactory(
            project=project,
            query=query,
            tree=tree,
            node=parent,
            chosen_node=chosen,
            rejected_node=rejected,
            gap=0.1,
            dedup_key="e2e-0",
        )
    ]
    queue += [
        PairFactory(project=project, query=QueryFactory(project=project), gap=0.1 * (i + 1), dedup_key=f"e2e-{i}")
        for i in range(1, 4)
    ]
    # gap 0.9: last in the queue; its chosen and rejected are swapped, so the chosen one is the wrong value
    wrong_chosen = PairFactory(
        project=project,
        query=QueryFactory(project=project),
        chosen="city='Lyon')]",
        rejected="city='Paris')]",
        gap=0.9,
        deficiency="",
        dedup_key="e2e-wrong",
    )
    assert wrong_chosen.chosen_verdict["deficiency"] == "wrong_value", wrong_chosen.chosen_verdict

    other_project = ProjectFactory(name="e2e-other-project")
    other_pair = PairFactory(project=other_project, dedup_key="e2e-other")
    return ReviewData(
        project=project,
        other_project=other_project,
        users=users,
        queue=queue,
        wrong_chosen=wrong_chosen,
        other_pair=other_pair,
        tree=tree,
    )


class Session:
    """One person's browser context: a page, the base URL, screenshots, and the JavaScript errors seen."""

    def __init__(self, context, base_url: str, screenshots: Path):
        self.context, self.base_url, self.screenshot_dir = context, base_url, screenshots
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" and not any(f"status of {code}" in msg.text for code in (400, 403, 404, 409))
                else None
            ),
        )  # answers the pages expect (bad input, conflicts) are not script errors

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str):
        return self.page.goto(self.url(path))

    def login(self, username: str, password: str = PASSWORD) -> None:
        """Through the real login form."""
        self.goto("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/projects/")

    def shot(self, name: str) -> Path:
        path = self.screenshot_dir / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_session(browser, live_server, screenshots):
    """open_session(username) → a logged-in Session in a fresh browser context (cookies of its own)."""
    contexts, sessions = [], []

    def open_(username: str) -> Session:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        contexts.append(context)
        session = Session(context, live_server.url, screenshots)
        session.login(username)
        sessions.append(session)
        return session

    yield open_
    for context in contexts:
        context.close()
    errors = [error for session in sessions for error in session.errors]
    assert not errors, f"JavaScript errors in the review pages: {errors}"
