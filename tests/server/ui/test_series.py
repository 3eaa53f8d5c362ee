"""The Overview's live series: bounded, and rates from neighbouring samples."""

from __future__ import annotations

from fkllmproxy.server.ui.series import Point, Series, point_of


def test_rates_come_from_differences_between_points() -> None:
    """Requests/s, error rate and tokens/s are per interval, newer than ``since``."""
    series = Series(interval=5.0)
    series.add(Point(100.0, 10, 0, 100, 1.0, 2.0, 3.0))
    series.add(Point(105.0, 20, 5, 150, 1.5, 2.5, 3.5))
    series.add(Point(110.0, 20, 5, 150, None, None, None))
    rates = series.rates()
    assert [r["rps"] for r in rates] == [2.0, 0.0]
    assert rates[0]["error_rate"] == 0.5
    assert rates[0]["tokens_per_s"] == 10.0
    assert rates[0]["p95"] == 2.5
    assert [r["t"] for r in series.rates(since=105.0)] == [110.0]


def test_the_series_keeps_one_hour() -> None:
    """At most an hour of points is kept, however long it runs."""
    series = Series(interval=5.0)
    for i in range(2000):
        series.add(Point(float(i * 5), i, 0, 0, None, None, None))
    assert len(series.points) == 721
    assert series.points[0].at == (2000 - 721) * 5


def test_a_point_from_a_metrics_snapshot() -> None:
    """The sample reads /metrics' snapshot fields."""
    point = point_of(
        {
            "total_requests": 7,
            "failed_requests": 2,
            "tokens": {"prompt": 3, "completion": 4},
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
        },
        at=5.0,
    )
    assert point == Point(5.0, 7, 2, 7, 1.0, 2.0, 3.0)
