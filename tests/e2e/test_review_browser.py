"""The review pages in a real Chromium (Playwright) against the live server: keyboard review, live-scored
edits, a conflict between two people resolved without a lost update, and what each role can reach.
Every visited page is saved under test-output/screenshots/."""

from __future__ import annotations

import re

import pytest

from apps.curation.models import PreferencePair, ReviewEvent

from .conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def focus_path(pair) -> str:
    return f"/projects/{pair.project_id}/pairs/{pair.pk}/"


def pair_on_page(page) -> int:
    return int(page.get_attribute("main[data-review]", "data-pair-id"))


# The page is ready for keys once review.js (deferred) has run: wait for "complete", not just the element (a
# key pressed while a full page load is still parsing would be lost).
READY = "document.readyState === 'complete' && document.querySelector('main[data-review]')?.dataset.pairId"


def wait_for_pair(page, pair_id: int) -> None:
    wait_until(page, f"{READY} === '{pair_id}'")


def wait_for_other_pair(page, pair_id: int) -> None:
    wait_until(page, f"{READY} && {READY} !== '{pair_id}'")


def events(pair, *actions) -> list[tuple[str, str, int]]:
    """(action, username, version) of the pair's events, oldest first (only `actions` when given)."""
    rows = ReviewEvent.objects.filter(pair_id=pair.pk).order_by("created_at", "pk")
    if actions:
        rows = rows.filter(action__in=actions)
    return [(e.action, e.user.username if e.user else None, e.version) for e in rows.select_related("user")]


def status(pair) -> str:
    return PreferencePair.objects.values_list("status", flat=True).get(pk=pair.pk)


def test_annotator_reviews_by_keyboard_alone(review_data, open_session):
    first, second, third, fourth = review_data.queue
    wrong = review_data.wrong_chosen
    s = open_session("annotator")
    page = s.page
    s.shot("01-project-list")

    s.goto(f"/projects/{review_data.project.pk}/pairs/next/")
    assert pair_on_page(page) == first.pk, "the queue hands out the smallest gap first"
    assert page.locator("#branch-chosen .badge.ok").inner_text() == "valid"
    assert page.locator("#branch-rejected .badge.bad").inner_text() == "wrong value"
    s.shot("03-focus-view")

    # ? shows the keys; Escape closes them
    dialog = page.locator("dialog#keys")
    assert not dialog.is_visible()
    page.keyboard.press("?")
    dialog.wait_for(state="visible")
    assert "Approve" in dialog.inner_text() and "next pair" in dialog.inner_text()
    s.shot("04-focus-help-overlay")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    # a: approve, and the next pair of the queue is shown
    page.keyboard.press("a")
    wait_for_pair(page, second.pk)
    assert status(first) == "approved"
    assert events(first, "approve", "reject") == [("approve", "annotator", 2)]

    # r: reject
    page.keyboard.press("r")
    wait_for_pair(page, third.pk)
    assert status(second) == "rejected"
    assert events(second, "approve", "reject") == [("reject", "annotator", 2)]

    # u: undo my last change — the reject just made, not the approval before it (the next pair's page came
    # from the preload, fetched before the reject)
    page.locator('form[data-key="u"] button', has_text=f"reject on #{second.pk}").wait_for()
    page.keyboard.press("u")
    wait_for_pair(page, second.pk)
    assert (status(first), status(second)) == ("approved", "pending")
    assert events(second, "reject", "undo") == [("reject", "annotator", 2), ("undo", "annotator", 3)]
    page.keyboard.press("r")  # and reject it again
    wait_for_pair(page, third.pk)
    assert status(second) == "rejected"
    assert events(second, "reject", "undo")[-1] == ("reject", "annotator", 4)

    # j: on to the next pair without deciding this one
    page.keyboard.press("j")
    wait_for_pair(page, fourth.pk)
    assert status(third) == "pending" and events(third, "approve", "reject") == []

    # n: the same
    page.keyboard.press("n")
    wait_for_pair(page, wrong.pk)
    assert status(fourth) == "pending" and events(fourth, "approve", "reject") == []

    # and a on a page reached by navigation acts on that page's pair (not a stale one)
    page.keyboard.press("a")
    wait_for_other_pair(page, wrong.pk)
    assert status(wrong) == "approved"
    assert events(wrong, "approve", "reject") == [("approve", "annotator", 2)]
    assert PreferencePair.objects.filter(project=review_data.project, status="pending").count() == 2
    # the undo button offered now is for the change just made
    undo = page.locator('form[data-key="u"] button')
    assert f"#{wrong.pk}" in undo.inner_text() and "approve" in undo.inner_text()


def test_annotator_edits_chosen_fragment_with_live_verdict(review_data, open_session):
    pair = review_data.wrong_chosen
    s = open_session("annotator")
    page = s.page
    s.goto(focus_path(pair))
    assert page.locator("#branch-chosen .badge.bad").inner_text() == "wrong value"

    page.keyboard.press("e")
    textarea = page.locator("form[data-editor] textarea[name=chosen]")
    textarea.wait_for(state="visible")
    assert page.evaluate("document.activeElement.name") == "chosen", "e puts the cursor in the editor"
    preview = page.locator("[data-edit-preview]")
    preview.locator(".badge.bad", has_text="wrong value").wait_for()  # the unedited text scored at once

    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("city='Paris')]")
    preview.locator(".badge.ok", has_text="valid").wait_for()
    assert preview.locator(".badge.bad").count() == 0
    assert "Paris" in preview.locator(".fragment.added").inner_text()
    s.shot("05-focus-edit-live-verdict")
    pair.refresh_from_db()
    assert (pair.status, pair.chosen, pair.version) == ("pending", "city='Lyon')]", 1), "nothing saved yet"

    page.keyboard.press("Control+Enter")
    wait_for_other_pair(page, pair.pk)
    pair.refresh_from_db()
    assert pair.status == "edited"
    assert pair.chosen == "city='Paris')]" and pair.original_chosen == "city='Lyon')]"
    assert pair.chosen_verdict["valid"] is True
    assert events(pair, "edit") == [("edit", "annotator", 2)]

    s.goto(f"/projects/{pair.project_id}/pairs/{pair.pk}/history/")
    table = page.locator("#events")
    assert "edit" in table.inner_text() and "annotator" in table.inner_text()
    assert re.search(r"chosen: city='Lyon'\)\] → city='Paris'\)\]", table.inner_text()), table.inner_text()
    s.shot("06-history")


def test_conflict_between_two_people_loses_no_update(review_data, open_session):
    pair = review_data.queue[0]
    annotator, reviewer = open_session("annotator"), open_session("reviewer")
    annotator.goto(focus_path(pair))
    reviewer.goto(focus_path(pair))
    assert pair_on_page(reviewer.page) == pair.pk

    annotator.page.keyboard.press("a")
    wait_for_other_pair(annotator.page, pair.pk)
    assert status(pair) == "approved"

    # the reviewer still sees version 1 and rejects: 409, the approval shown, nothing written
    reviewer.page.keyboard.press("r")
    conflict = reviewer.page.locator("#conflict")
    conflict.wait_for(state="visible")
    text = conflict.inner_text()
    assert f"Pair #{pair.pk} changed since you read it" in text
    assert "You read version 1; it is now at version 2" in text
    assert re.search(r"annotator\s+approve\s+status\s+pending\s+approved", text), text
    reviewer.shot("07-conflict-view")
    assert status(pair) == "approved" and events(pair, "approve", "reject") == [("approve", "annotator", 2)]

    reviewer.page.get_by_role("button", name="Re-apply my reject to version 2").click()
    reviewer.page.wait_for_load_state()
    reviewer.page.locator(".messages", has_text=f"Reject: pair #{pair.pk} done.").wait_for()
    pair.refresh_from_db()
    assert pair.status == "rejected" and pair.reviewed_by.username == "reviewer" and pair.version == 3
    assert events(pair, "approve", "reject") == [("approve", "annotator", 2), ("reject", "reviewer", 3)]


def test_roles_what_each_person_can_reach(review_data, open_session):
    project, other = review_data.project, review_data.other_project
    s = open_session("annotator")
    page = s.page
    rows = page.locator("table.grid tbody tr")
    assert rows.count() == 1 and project.name in rows.first.inner_text()
    assert other.name not in page.content()

    # another project: 404 for its dashboard and its pairs, even by typed URL
    for path in (
        f"/projects/{other.pk}/",
        focus_path(review_data.other_pair),
        f"/projects/{other.pk}/pairs/next/",
        f"/projects/{other.pk}/guidelines/",
    ):
        response = s.goto(path)
        assert response.status == 404, path
    s.shot("08-other-project-404")

    response = s.goto(f"/projects/{project.pk}/")
    assert response.status == 200
    assert page.get_by_role("link", name="Start reviewing").is_visible()
    assert page.get_by_role("link", name=re.compile("Adjudicate")).count() == 0, "adjudication is for reviewers"
    assert page.locator("nav.top a", has_text="Admin").count() == 0
    assert "annotator · annotator" in page.locator("nav.top .who").inner_text()
    s.shot("02-dashboard")

    s.goto(f"/projects/{project.pk}/pairs/")
    assert page.locator("#pairs tbody tr").count() == 5
    s.shot("09-bulk-view")

    first = review_data.queue[0]
    s.goto(focus_path(first))
    page.keyboard.press("t")
    page.wait_for_url(re.compile(rf"/trees/{review_data.tree.pk}/\?pair={first.pk}"))
    assert page.locator("#tree .mark-chosen").count() == 1 and page.locator("#tree .mark-rejected").count() == 1
    s.shot("10-tree-view")

    s.goto(f"/projects/{project.pk}/guidelines/")
    assert "Approve a pair when the" in page.locator("#guidelines").inner_text()
    assert page.locator("textarea[name=guidelines]").count() == 0, "annotators do not edit the guidelines"
    s.shot("11-guidelines-annotator")

    admin = open_session("admin")
    admin.goto(f"/projects/{project.pk}/")
    assert admin.page.get_by_role("link", name=re.compile("Adjudicate")).is_visible()
    admin.goto(f"/projects/{project.pk}/guidelines/")
    editor = admin.page.locator("textarea[name=guidelines]")
    assert editor.is_visible()
    admin.shot("12-guidelines-admin")
    editor.fill("# Guidelines\n\nNew rule: *reject* calls to unknown tools.")
    admin.page.get_by_role("button", name="Save").click()
    admin.page.locator(".messages", has_text="Guidelines saved.").wait_for()
    assert "New rule" in admin.page.locator("#guidelines").inner_text()
    project.refresh_from_db()
    assert "New rule" in project.guidelines
