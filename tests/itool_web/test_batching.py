"""`batched`: consecutive lists of a given size, the last one shorter, reading the items once."""

from itool_web.batching import batched


def test_lists_of_size_then_the_rest_from_a_one_pass_iterator():
    items = iter(range(7))
    assert list(batched(items, 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched(range(6), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(batched([], 3)) == []
