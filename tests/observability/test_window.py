"""The recent-outcome rings: newest records kept, readable from another process's view."""

from __future__ import annotations

from pathlib import Path

from fkllmproxy.observability.window import Ring, percentile, read_ring_files


class TestRing:
    def test_keeps_only_the_newest_capacity_records(self) -> None:
        """Past its capacity the ring overwrites the oldest records."""
        ring = Ring("requests", 4)
        for i in range(10):
            ring.add(float(i), ok=i % 2 == 0, at=1000.0 + i)
        records = ring.records()
        assert sorted(r.seconds for r in records) == [6.0, 7.0, 8.0, 9.0]
        assert {r.seconds: r.ok for r in records} == {6.0: True, 7.0: False, 8.0: True, 9.0: False}

    def test_file_ring_is_read_back_with_its_label(self, tmp_path: Path) -> None:
        """A ring in a file is what another worker reads when it answers a scrape."""
        first = Ring("requests", 8, tmp_path / "1-0.ring")
        second = Ring("upstream:mock", 8, tmp_path / "2-0.ring")
        first.add(0.5, ok=True, at=10.0)
        second.add(1.5, ok=False, at=11.0)
        second.add(2.5, ok=True, at=12.0)
        found = dict(read_ring_files(tmp_path))
        assert [r.seconds for r in found["requests"]] == [0.5]
        assert [(r.seconds, r.ok) for r in found["upstream:mock"]] == [(1.5, False), (2.5, True)]

    def test_unreadable_files_are_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "junk.ring").write_bytes(b"not a ring at all")
        Ring("requests", 2, tmp_path / "ok.ring").add(1.0, ok=True)
        assert [label for label, _ in read_ring_files(tmp_path)] == ["requests"]


class TestPercentile:
    def test_interpolates_between_ranks(self) -> None:
        values = [float(v) for v in range(1, 101)]
        assert percentile(values, 0.5) == 50.5
        assert percentile(values, 0.0) == 1.0
        assert percentile(values, 1.0) == 100.0
        assert percentile([7.0], 0.99) == 7.0

    def test_empty_has_no_percentile(self) -> None:
        assert percentile([], 0.5) is None
