import pytest

from archiver.errors import ListingLimitError, PagingError
from archiver.failures import ListingLimit
from archiver.settings import SourceSettings
from archiver.sources.paging import ListingBounds, OffsetPaginator, PageNumberPaginator


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


# -- bounds: hostile paging shapes stop with the bound they hit -----------------------


def _bounded(**kw):
    return ListingBounds(**kw)


def test_a_total_that_keeps_growing_with_fresh_ids_stops_at_max_pages():
    p = OffsetPaginator(limit=10, bounds=_bounded(max_pages=50))

    def grow_for_ever() -> None:
        while p.has_more:
            o = p.params()["offset"]
            p.advance(_ids(o, o + 10), total=o + 20)  # always one page more to come

    with pytest.raises(ListingLimitError, match="MAX_PAGES") as info:
        grow_for_ever()
    assert info.value.limit is ListingLimit.PAGES
    assert p.pages == 51


@pytest.mark.parametrize("cls", [OffsetPaginator, PageNumberPaginator])
def test_pages_alternating_a_b_a_b_stop_as_repeated(cls):
    p = cls(limit=10)
    pages = [_ids(0, 10), _ids(10, 20)]
    p.advance(pages[0], total=1000) if cls is OffsetPaginator else p.advance(pages[0])
    p.advance(pages[1], total=1000) if cls is OffsetPaginator else p.advance(pages[1])
    with pytest.raises(ListingLimitError, match="earlier one") as info:
        p.advance(pages[0])
    assert info.value.limit is ListingLimit.REPEAT


def test_next_page_true_for_ever_stops_at_max_pages():
    p = PageNumberPaginator(limit=10, bounds=_bounded(max_pages=30))

    def next_page_for_ever() -> None:
        while p.has_more:
            n = p.params()["page"]
            p.advance(_ids(n * 10, n * 10 + 10), next_page=True)

    with pytest.raises(ListingLimitError, match="MAX_PAGES") as info:
        next_page_for_ever()
    assert info.value.limit is ListingLimit.PAGES


def test_next_page_true_for_ever_with_the_same_page_stops_as_repeated():
    p = PageNumberPaginator(limit=10)
    p.advance(_ids(0, 10), next_page=True)
    with pytest.raises(ListingLimitError) as info:
        p.advance(_ids(0, 10), next_page=True)
    assert info.value.limit is ListingLimit.REPEAT


@pytest.mark.parametrize("cls", [OffsetPaginator, PageNumberPaginator])
def test_a_page_of_too_many_rows_is_refused_before_it_is_taken(cls):
    p = cls(limit=10, bounds=_bounded(max_rows=100))
    with pytest.raises(ListingLimitError, match="MAX_ROWS") as info:
        p.advance(_ids(0, 5), rows=1_000_000)  # rows without usable ids count too
    assert info.value.limit is ListingLimit.ROWS


def test_a_listing_past_its_deadline_stops():
    now = [0.0]
    p = OffsetPaginator(limit=10, bounds=_bounded(deadline=60.0, clock=lambda: now[0]))
    p.advance(_ids(0, 10))
    now[0] = 61.0
    with pytest.raises(ListingLimitError, match="LIST_DEADLINE") as info:
        p.advance(_ids(10, 20))
    assert info.value.limit is ListingLimit.DEADLINE


def test_the_bounds_are_the_source_settings() -> None:
    settings = SourceSettings(max_rows=5, max_pages=7, list_deadline=9.0)
    assert ListingBounds.of(settings) == ListingBounds(max_rows=5, max_pages=7, deadline=9.0)
