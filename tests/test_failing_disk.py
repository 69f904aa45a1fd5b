"""The pure failing-disk model of ``ddfs simulate``: failures, weak areas, timing, counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddfs.simulate.disk import FailingDisk, WeakArea, parse_hang, parse_weak
from engine.errors import DdfsError
from engine.map.blockmap import BlockMap
from engine.map.mapfile import parse_mapfile_text

KiB = 1024
MiB = 1024 * KiB


def bad_map(*areas: tuple[int, int, str], end: int = 8 * MiB) -> BlockMap:
    bm = BlockMap(end, "+")
    for pos, size, status in areas:
        bm.set_status(pos, size, status)
    return bm


@pytest.mark.parametrize("status", ["-", "*", "/"])
def test_bad_statuses_fail_at_block_edges(status: str) -> None:
    disk = FailingDisk(8 * MiB, bad_map((MiB, 1024, status)))
    assert disk.plan_read(MiB - 512, 512).ok  # ends right before the bad block
    assert not disk.plan_read(MiB - 512, 513).ok  # its last byte is the first bad one
    plan = disk.plan_read(MiB - 4096, 8192)
    assert not plan.ok and plan.error_pos == MiB
    assert not disk.plan_read(MiB + 1023, 1).ok  # last bad byte
    assert disk.plan_read(MiB + 1024, 512).ok  # right after it
    assert not disk.plan_read(0, 8 * MiB).ok


@pytest.mark.parametrize("status", ["?", "+"])
def test_good_statuses_read(status: str) -> None:
    bm = BlockMap(MiB, status)
    disk = FailingDisk(2 * MiB, bm)  # past the end of the map: good too
    assert disk.plan_read(0, 2 * MiB).ok
    assert disk.bad_bytes() == 0


def test_mapfile_text_and_bad_bytes() -> None:
    data = parse_mapfile_text(
        "0x0 +\n0x0 0x1000 +\n0x1000 0x200 -\n0x1200 0x400 /\n0x1600 0x100 ?\n0x1700 0x900 *\n"
    )
    disk = FailingDisk(0x1800, data.bmap)  # the image ends inside the last '*' block
    assert disk.bad_bytes() == 0x200 + 0x400 + 0x100
    assert disk.plan_read(0x1600, 0x100).ok
    assert not disk.plan_read(0x1600, 0x101).ok


def test_no_map_means_no_errors() -> None:
    disk = FailingDisk(MiB)
    assert disk.plan_read(0, MiB).ok
    assert disk.bad_bytes() == 0


def test_weak_area_fails_tries_times_then_reads() -> None:
    disk = FailingDisk(MiB, weak=[WeakArea(4096, 1024, 3)])
    assert disk.plan_read(0, 4096).ok  # adjacent, not touching
    assert disk.plan_read(5120, 4096).ok
    assert disk.weak[0].reads == 0
    results = [disk.plan_read(4096 + 512, 512).ok for _ in range(3)]
    assert results == [False, False, False]
    assert disk.plan_read(0, 8192).ok  # the 4th read touching it
    assert disk.weak[0].reads == 4
    assert disk.stats()["errors"] == 3


def test_weak_zero_tries_never_fails() -> None:
    disk = FailingDisk(MiB, weak=[WeakArea(0, 512, 0)])
    assert disk.plan_read(0, 512).ok


def test_weak_counts_also_when_bad_fails_the_read() -> None:
    disk = FailingDisk(MiB, bad_map((0, 512, "-"), end=MiB), weak=[WeakArea(4096, 512, 1)])
    plan = disk.plan_read(0, 8192)
    assert not plan.ok and plan.error_pos == 0
    assert disk.weak[0].reads == 1
    assert disk.plan_read(4096, 512).ok


def test_error_pos_is_first_failure() -> None:
    disk = FailingDisk(MiB, bad_map((8192, 512, "-"), end=MiB), weak=[WeakArea(4096, 512, 1)])
    assert disk.plan_read(0, 16384).error_pos == 4096


def test_hang_areas() -> None:
    disk = FailingDisk(MiB, rate=1000, seek_s=1, weak=[WeakArea(0, MiB, 5)], hang=[(4096, 512)])
    plan = disk.plan_read(0, 8192)
    assert plan.hang and not plan.ok and plan.seconds == 0
    assert disk.weak[0].reads == 0 and disk.head == 0 and disk.busy_seconds == 0
    assert disk.plan_read(4608, 512).error_pos == 4608  # after the hang area: the weak one
    s = disk.stats()
    assert (s["hangs"], s["reads"], s["errors"]) == (1, 2, 1)


def test_timing_seek_transfer_error() -> None:
    disk = FailingDisk(
        10 * MiB, bad_map((MiB, 512, "-"), end=10 * MiB), rate=MiB, seek_s=0.01, error_s=0.5
    )
    p = disk.plan_read(0, 65536)  # the head starts at 0: sequential
    assert not p.seek and p.seconds == pytest.approx(1 / 16)
    p = disk.plan_read(65536, 65536)
    assert not p.seek and p.seconds == pytest.approx(1 / 16)
    p = disk.plan_read(MiB // 2, 65536)
    assert p.seek and p.seconds == pytest.approx(0.01 + 1 / 16)
    # failed read: transfer up to the bad byte, plus the error time; the head moves past it
    p = disk.plan_read(MiB - 1024, 4096)
    assert not p.ok and p.seek and p.seconds == pytest.approx(0.01 + 1024 / MiB + 0.5)
    p = disk.plan_read(MiB + 3072, 512)
    assert not p.seek and p.ok
    s = disk.stats()
    assert s["seeks"] == 2
    assert s["busy_seconds"] == pytest.approx(3 / 16 + 0.02 + 1024 / MiB + 0.5 + 512 / MiB)


def test_unlimited_rate_costs_only_seeks_and_errors() -> None:
    disk = FailingDisk(MiB, bad_map((0, 512, "-"), end=MiB), seek_s=0.002, error_s=0.1)
    assert disk.plan_read(4096, 4096).seconds == pytest.approx(0.002)
    assert disk.plan_read(8192, 4096).seconds == 0
    assert disk.plan_read(0, 512).seconds == pytest.approx(0.102)


def test_eof_clipping() -> None:
    disk = FailingDisk(10000, rate=1000)
    p = disk.plan_read(9000, 4096)
    assert p.ok and p.size == 1000
    assert disk.head == 10000
    for pos in (10000, 20000):
        p = disk.plan_read(pos, 4096)
        assert p.ok and p.size == 0 and p.seconds == 0 and not p.seek
    assert disk.head == 10000
    s = disk.stats()
    assert (s["reads"], s["bytes"], s["seeks"]) == (3, 1000, 1)
    assert s["read_sizes"] == {"4096": 3}  # requested sizes


def test_counters_and_stats_shape() -> None:
    disk = FailingDisk(MiB, bad_map((0, 512, "-"), end=MiB), weak=[WeakArea(512, 512, 1)])
    disk.plan_read(0, 512)
    disk.plan_read(512, 512)
    disk.plan_read(512, 512)
    disk.plan_read(4096, 65536)
    s = disk.stats()
    assert s["reads"] == 4
    assert s["errors"] == 2
    assert s["bytes"] == 512 + 65536
    assert s["read_sizes"] == {"512": 3, "65536": 1}
    assert s["weak"] == [{"pos": 512, "size": 512, "tries": 1, "reads": 2}]
    assert s["bad_bytes"] == 512 and s["size"] == MiB


def test_read_sizes_histogram_is_bounded() -> None:
    disk = FailingDisk(MiB)
    for n in range(1, 1000):
        disk.plan_read(0, n)
    sizes = disk.stats()["read_sizes"]
    assert len(sizes) == 257 and sum(sizes.values()) == 999


def test_parse_weak_and_hang() -> None:
    assert parse_weak("1Mi:4Ki:2") == WeakArea(MiB, 4096, 2)
    assert parse_weak("0x200:2s:0") == WeakArea(512, 1024, 0)
    assert parse_hang("10k:1") == (10000, 1)
    for bad in ("1:2", "1:2:3:4", "x:1:1", "-1:1:1", "0:0:1", "0:1:-1"):
        with pytest.raises(DdfsError, match="--weak"):
            parse_weak(bad)
    for bad in ("1", "1:2:3", "0:0"):
        with pytest.raises(DdfsError, match="--hang"):
            parse_hang(bad)


def test_negative_settings_rejected() -> None:
    with pytest.raises(ValueError):
        FailingDisk(1, rate=-1)
    with pytest.raises(ValueError):
        FailingDisk(1).plan_read(-1, 1)


@settings(max_examples=200, deadline=None)
@given(
    bad=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 10)), max_size=5),
    pos=st.integers(0, 80),
    size=st.integers(0, 30),
)
def test_ok_iff_no_bad_byte_in_range(bad: list[tuple[int, int]], pos: int, size: int) -> None:
    bm = BlockMap(64, "+")
    model = [False] * 64
    for p, n in bad:
        n = min(n, 64 - p)
        if n > 0:
            bm.set_status(p, n, "-")
            model[p : p + n] = [True] * n
    disk = FailingDisk(70, bm)
    plan = disk.plan_read(pos, size)
    end = min(pos + size, 70)
    hits = [i for i in range(pos, end) if i < 64 and model[i]]
    assert plan.ok == (not hits)
    assert plan.error_pos == (hits[0] if hits else None)
