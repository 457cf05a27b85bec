"""The browser suite's list of pages covers every URL (no browser needed to check that)."""

from config.tests.test_pages_browser import CASES, NOT_PAGES, PAGES, named_urls


def test_every_named_url_is_a_page_or_says_why_not():
    names = set(named_urls())
    assert not set(PAGES) & set(NOT_PAGES)
    assert names - set(PAGES) - set(NOT_PAGES) == set(), (
        "a new URL: add it to PAGES (or NOT_PAGES, saying why)"
    )
    assert (set(PAGES) | set(NOT_PAGES)) - names == set(), "a URL in these lists no longer exists"


def test_every_page_is_scanned_at_least_once():
    scanned = {case.name for case in CASES if case.name}
    assert scanned == set(PAGES)
    assert {"store-detail", "journey-order", "launch-overview"} <= scanned
