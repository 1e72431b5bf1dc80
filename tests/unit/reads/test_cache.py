"""rates.reads.cache: an answer is served at the data version it was computed at or an older one read since,
never at a newer one."""

from rates.reads.cache import VersionedCache


def test_a_body_is_never_served_once_the_data_changed():
    cache = VersionedCache(10)
    cache.put("k", 5, b"five")
    assert cache.get("k", 5) == (5, b"five")
    assert cache.get("k", 6) is None  # the data changed since: never served
    assert cache.get("other", 5) is None


def test_a_replica_behind_the_entry_gets_the_newer_body_and_does_not_evict_it():
    cache = VersionedCache(10)
    cache.put("k", 9, b"nine")  # computed on a replica that has replayed up to version 9
    assert cache.get("k", 8) == (9, b"nine")  # another replica still at 8: newer, never older
    cache.put("k", 8, b"eight")
    assert cache.get("k", 9) == (9, b"nine")


def test_an_older_result_never_replaces_a_newer_one():
    cache = VersionedCache(10)
    cache.put("k", 7, b"seven")
    cache.put("k", 6, b"six")  # a slower concurrent request computed at an older version
    assert cache.get("k", 7) == (7, b"seven")
    cache.put("k", 8, b"eight")
    assert cache.get("k", 8) == (8, b"eight")


def test_least_recently_used_entries_go_first():
    cache = VersionedCache(2)
    cache.put("a", 1, b"a")
    cache.put("b", 1, b"b")
    assert cache.get("a", 1) == (1, b"a")  # a is now the most recently used
    cache.put("c", 1, b"c")
    assert (cache.has("a"), cache.has("b"), cache.has("c")) == (True, False, True)


def test_size_zero_disables_the_cache():
    cache = VersionedCache(0)
    cache.put("k", 1, b"x")
    assert not cache.enabled and not cache.has("k") and cache.get("k", 1) is None
