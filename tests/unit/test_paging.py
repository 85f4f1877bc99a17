import pytest

from archiver.errors import PagingError
from archiver.sources.paging import OffsetPaginator, PageNumberPaginator


def _ids(a: int, b: int) -> list[str]:
    return [f"id{i}" for i in range(a, b)]


def test_offset_pagination_stops_at_total():
    p = OffsetPaginator(limit=10)
    seen = []
    while p.has_more:
        o = p.params()["offset"]
        page = _ids(o, min(o + 10, 30))
        seen += page
        p.advance(page, total=30)
    assert seen == _ids(0, 30)
    assert p.pages == 3


def test_offset_stops_on_a_short_page_without_total():
    p = OffsetPaginator(limit=10)
    p.advance(_ids(0, 10))
    assert p.has_more
    assert p.params() == {"limit": 10, "offset": 10}
    p.advance(_ids(10, 13))
    assert not p.has_more


def test_scroll_server_with_its_own_page_size_is_not_cut_short():
    # We ask for 100; a scroll server answers 10 at a time and says limit=10.
    p = OffsetPaginator(limit=100)
    seen = []
    while p.has_more:
        o = p.params()["offset"]
        page = _ids(o, min(o + 10, 35))
        seen += page
        p.advance(page, total=35, server_limit=10)
    assert seen == _ids(0, 35)


def test_empty_page_stops():
    p = OffsetPaginator(limit=10)
    p.advance([])
    assert not p.has_more


def test_a_repeated_page_raises_instead_of_looping():
    p = OffsetPaginator(limit=10)
    p.advance(_ids(0, 10))
    with pytest.raises(PagingError, match="repeats the previous page"):
        p.advance(_ids(0, 10))


def test_page_numbers_follow_next_page():
    p = PageNumberPaginator(limit=2)
    assert p.params() == {"page": 1, "limit": 2}
    p.advance(_ids(0, 2), next_page=True, page_count=3)
    assert p.has_more
    assert p.params()["page"] == 2
    p.advance(_ids(2, 4), next_page=True, page_count=3)
    p.advance(_ids(4, 5), next_page=False, page_count=3)
    assert not p.has_more


def test_page_count_caps_a_lying_next_page():
    p = PageNumberPaginator(limit=2)
    p.advance(_ids(0, 2), next_page=True, page_count=1)
    assert not p.has_more


@pytest.mark.parametrize(("n", "more"), [(2, True), (1, False)])
def test_page_numbers_without_paging_object(n, more):
    p = PageNumberPaginator(limit=2)
    p.advance(_ids(0, n))
    assert p.has_more is more


def test_page_numbers_repeated_page_raises():
    p = PageNumberPaginator(limit=2)
    p.advance(_ids(0, 2), next_page=True)
    with pytest.raises(PagingError):
        p.advance(_ids(0, 2), next_page=True)


def test_shifted_rows_do_not_end_the_listing_at_total_too_early():
    # Each page after the first starts one row early (the same CDR on two pages):
    # the offset reaches total before the last row was seen.
    rows = _ids(0, 40)
    p = OffsetPaginator(limit=10)
    seen: list[str] = []
    while p.has_more:
        o = p.params()["offset"]
        start = max(o - 1, 0) if o else 0
        page = rows[start : start + 10]
        seen += page
        p.advance(page, total=40)
    assert set(seen) == set(rows)


def test_paging_numbers_are_read_leniently_and_safely():
    from archiver.sources.mapping import as_int

    assert as_int(35) == 35
    assert as_int(" 35 ") == 35
    assert as_int(True) is None
    assert as_int("thirty") is None
    assert as_int(None) is None
    assert as_int("9" * 5000) is None  # int() would raise on this
