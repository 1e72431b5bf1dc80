"""rates.reads.cache: an answer is served only at the data version it was computed at."""

from rates.reads.cache import VersionedCache


def test_a_body_is_served_at_its_version_only():
    cache = VersionedCache(10)
    cache.put("k", 5, b"five")
    assert cache.get("k", 5) == b"five"
    assert cache.get("k", 6) is None  # the data changed since: never served
    assert cache.get("other", 5) is None


def test_an_older_result_never_replaces_a_newer_one():
    cache = VersionedCache(10)
    cache.put("k", 7, b"seven")
    cache.put("k", 6, b"six")  # a slower concurrent request computed at an older version
    assert cache.get("k", 7) == b"seven"
    cache.put("k", 8, b"eight")
    assert cache.get("k", 8) == b"eight"


def test_least_recently_used_entries_go_first():
    cache = VersionedCache(2)
    cache.put("a", 1, b"a")
    cache.put("b", 1, b"b")
    assert cache.get("a", 1) == b"a"  # a is now the most recently used
    cache.put("c", 1, b"c")
    assert (cache.has("a"), cache.has("b"), cache.has("c")) == (True, False, True)


def test_size_zero_disables_the_cache():
    cache = VersionedCache(0)
    cache.put("k", 1, b"x")
    assert not cache.enabled and not cache.has("k") and cache.get("k", 1) is None
