"""Keyset pages: every row once, in order, both ways, ties in the sort key included; bad cursors start over."""

import pytest

from apps.curation.models import PreferencePair
from apps.curation.paging import cursor_of, keyset_page, parse_cursor
from apps.curation.selectors import SORTS
from tests.factories import PairFactory


@pytest.fixture
def pairs(project):
    gaps = [0.5, 0.1, 0.5, 0.3, 0.5, 0.1, 0.7, 1 / 3, 0.5]  # ties, and a gap with no short decimal form
    return [PairFactory(project=project, gap=gap) for gap in gaps]


@pytest.mark.parametrize("sort", list(SORTS))
def test_pages_walk_every_row_once_forward_and_back(pairs, sort):
    order = SORTS[sort]
    rows = PreferencePair.objects.all()
    expected = [p.pk for p in rows.order_by(*order)]
    pages, page = [], keyset_page(rows, order=order, size=2)
    assert page.previous_cursor == ""
    while True:
        pages.append([p.pk for p in page.rows])
        if not page.next_cursor:
            break
        page = keyset_page(rows, order=order, size=2, after=page.next_cursor)
    assert [pk for chunk in pages for pk in chunk] == expected and len(pages) == 5
    back = []
    while page.previous_cursor:
        page = keyset_page(rows, order=order, size=2, before=page.previous_cursor)
        back.append([p.pk for p in page.rows])
    assert back == pages[-2::-1]


def test_cursors_read_back_exactly_and_bad_ones_give_the_first_page(pairs):
    order = SORTS["uncertainty"]
    third = PreferencePair.objects.get(pk=pairs[7].pk)
    assert parse_cursor(cursor_of(third, order), order) == {"gap": 1 / 3, "id": third.pk}
    rows = PreferencePair.objects.all()
    first = [p.pk for p in keyset_page(rows, order=order, size=3).rows]
    for bad in ("nonsense", "0.5", "0.5~x", "nan~3", "1~2~3"):
        assert [p.pk for p in keyset_page(rows, order=order, size=3, after=bad).rows] == first
