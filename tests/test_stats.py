"""StatsRecorder: the documented dict, counts from events, cumulative histogram buckets."""

from __future__ import annotations

import math

from poolbridge.pool.stats import BUCKETS, STAT_KEYS, Histogram, StatsRecorder


def test_fresh_snapshot_has_every_documented_key() -> None:
    snap = StatsRecorder(min_size=2, max_size=7).snapshot()
    assert tuple(snap) == STAT_KEYS
    assert snap["connection.max"] == 7 and snap["connection.idle.max"] == 7
    assert snap["connection.idle.min"] == 2
    counters = [k for k in STAT_KEYS if not k.endswith("_time") and k not in (
        "connection.max", "connection.idle.min", "connection.idle.max")]  # fmt: skip
    assert all(snap[k] == 0 for k in counters)
    for key in ("connection.create_time", "connection.wait_time", "connection.use_time"):
        assert snap[key]["count"] == 0 and snap[key]["sum"] == 0.0
        assert list(snap[key]["buckets"]) == list(BUCKETS)


def test_counts_follow_the_events() -> None:
    r = StatsRecorder(min_size=1, max_size=5)
    for seconds in (0.01, 0.02, 0.03):
        r.record_created(seconds)
    r.record_checkout(0.001)
    r.record_checkout(0.2)
    snap = r.snapshot()
    assert (snap["connection.count.idle"], snap["connection.count.used"]) == (1, 2)
    r.record_checkin(1.0)
    r.record_closed(was_used=True)  # the other checked-out one died while in use
    r.record_closed()
    r.record_timeout()
    r.record_refused()
    r.record_refused()
    r.record_error()
    r.record_retry()
    r.pending = 3
    snap = r.snapshot()
    assert (snap["connection.count.idle"], snap["connection.count.used"]) == (1, 0)
    assert (snap["connection.created"], snap["connection.closed"]) == (3, 2)
    assert (snap["connection.timeouts"], snap["connection.refused"]) == (1, 2)
    assert (snap["connection.errors"], snap["connection.retries"]) == (1, 1)
    assert snap["connection.pending_requests"] == 3
    assert snap["connection.wait_time"]["count"] == 2
    assert math.isclose(snap["connection.wait_time"]["sum"], 0.201)
    assert snap["connection.use_time"]["count"] == 1
    assert math.isclose(snap["connection.create_time"]["sum"], 0.06)


def test_histogram_buckets_are_cumulative_with_upper_bounds_inclusive() -> None:
    h = Histogram()
    for seconds in (0.0005, 0.003, 0.005, 0.7, 10.0, 99.0):
        h.observe(seconds)
    b = h.snapshot()["buckets"]
    assert b[0.0005] == 1  # a value equal to a bound falls in that bucket (le semantics)
    assert b[0.001] == 1 and b[0.0025] == 1 and b[0.005] == 3
    assert b[0.5] == 3 and b[1.0] == 4 and b[10.0] == 5 and b[math.inf] == 6
    values = list(b.values())
    assert values == sorted(values) and values[-1] == h.count == 6
    assert math.isclose(h.sum, 0.0005 + 0.003 + 0.005 + 0.7 + 10.0 + 99.0)


def test_pool_stats_type_names_every_key_a_snapshot_has() -> None:
    from poolbridge.pool.stats import HistogramSnapshot, PoolStats

    assert tuple(PoolStats.__annotations__) == STAT_KEYS
    assert PoolStats.__required_keys__ == frozenset(STAT_KEYS)
    snap = StatsRecorder(min_size=1, max_size=2).snapshot()
    for key in STAT_KEYS:
        if key.endswith("_time"):
            assert set(snap[key]) == set(HistogramSnapshot.__annotations__)
