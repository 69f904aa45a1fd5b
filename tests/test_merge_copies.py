"""Merging damaged copies of one disk into one image (issue 14): a mapfile resumed against
another source (another size here) goes on when sampled rescued sectors hold the same data in
that source and in the image, and is refused, saying how many differ, when they do not."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from engine.map.blockmap import BlockMap
from engine.rescue.samecopy import sample_sectors
from tests.conftest import map_lines
from tests.oracle import DDFS, KiB, MiB, write_test_map


def ddfs(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [DDFS, "rescue", *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_two_copies_fill_each_others_gaps(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(MiB)
    short, full = tmp_path / "short.img", tmp_path / "full.img"
    short.write_bytes(data[: 960 * KiB])  # this copy lost its end
    full.write_bytes(data)
    write_test_map(tmp_path / "bad_short.map", 960 * KiB, [(100 * KiB, 8 * KiB)])
    write_test_map(tmp_path / "bad_full.map", MiB, [(500 * KiB, 4 * KiB), (900 * KiB, 512)])
    out, mp = tmp_path / "out.img", tmp_path / "out.map"
    first = ddfs("-q", "-H", tmp_path / "bad_short.map", short, out, mp)
    assert first.returncode == 0, first.stderr
    assert "-" in {line.split()[2] for line in map_lines(mp)[1:]}
    second = ddfs("-r1", "-H", tmp_path / "bad_full.map", full, out, mp)
    assert second.returncode == 0, second.stderr
    assert "not the source this mapfile was written for (size 1048576, not 983040" in second.stderr
    assert "rescued sectors compared hold the same data: merging" in second.stderr
    assert map_lines(mp)[1:] == ["0x00000000  0x00100000  +"]
    assert out.read_bytes() == data


def test_another_disk_is_refused_with_how_much_differs(tmp_path: Path) -> None:
    disk, other = tmp_path / "disk.img", tmp_path / "other.img"
    disk.write_bytes(random.Random(4).randbytes(MiB))
    other.write_bytes(random.Random(5).randbytes(MiB + 64 * KiB))
    out, mp = tmp_path / "out.img", tmp_path / "out.map"
    assert ddfs("-q", disk, out, mp).returncode == 0
    before = (mp.read_bytes(), out.read_bytes())
    res = ddfs(other, out, mp)
    assert res.returncode == 1
    assert "Not the source this mapfile was written for (size 1114112, not 1048576" in res.stderr
    assert "32 of 32 rescued sectors compared hold other data" in res.stderr
    assert (mp.read_bytes(), out.read_bytes()) == before
    forced = ddfs("-q", "--allow-other-source", other, out, mp)
    assert forced.returncode == 0, forced.stderr


def test_sample_is_spread_over_rescued_sectors() -> None:
    bm = BlockMap.from_blocks([(0, 4096, "+"), (4096, 4096, "-"), (8192, 2048, "+")])
    assert sample_sectors(bm, bm.end, 512, 4) == [512, 2048, 3584, 9216]
    assert sample_sectors(bm, bm.end, 512) == [*range(0, 4096, 512), *range(8192, 10240, 512)]
    assert sample_sectors(bm, 8704, 512) == [*range(0, 4096, 512), 8192]
    assert sample_sectors(BlockMap.from_blocks([(0, 4096, "?")]), 4096, 512) == []
