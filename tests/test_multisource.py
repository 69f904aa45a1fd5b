"""Rescuing from several copies of one disk in turn (ddrescue's multi-source recipe, issue 5).

Three ``ddfs simulate`` disks serve the same image with different bad areas. ``ddfs rescue``
runs on each in turn into one output file and one mapfile. The result is complete and equal to
the image, and the simulators' read logs show that no run read a block the map before it
already had as finished (``+``).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import map_lines, run_ddfs
from tests.simdisk import simulated_disk
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse

SIZE = 2 << 20
#: bad areas per copy: B is bad on part of A's first area, C is good wherever A and B fail
BAD = {
    "a": [(0x10000, 0x8000), (0x80000, 0x4000)],
    "b": [(0x14000, 0x8000), (0xC0000, 0x2000)],
    "c": [(0x80000, 0x1000), (0x100000, 0x10000)],
}


def finished(mapfile: Path) -> list[tuple[int, int]]:
    """The ``+`` blocks of a mapfile as (start, end); none if there is no map yet."""
    if not mapfile.exists():
        return []
    out = []
    for line in map_lines(mapfile)[1:]:
        pos, size, st = line.split()
        if st == "+":
            out.append((int(pos, 0), int(pos, 0) + int(size, 0)))
    return out


def reads(log: Path) -> list[tuple[int, int, str]]:
    out = []
    for line in log.read_text().splitlines():
        pos, size, result = line.split()
        out.append((int(pos), int(size), result))
    return out


@pytest.mark.parametrize("plan", [[], ["--no-metadata-first"]], ids=["planned", "plain"])
def test_three_copies_in_turn(tmp_path: Path, plan: list[str]) -> None:
    image = tmp_path / "disk.img"
    original = random.Random(3).randbytes(SIZE)
    image.write_bytes(original)
    out, mapfile = tmp_path / "rescued.img", tmp_path / "rescue.map"
    for name, bad in BAD.items():
        write_testmap(tmp_path / f"bad-{name}.map", SIZE, bad)
        (tmp_path / f"sim-{name}").mkdir()
        log = tmp_path / f"reads-{name}.log"
        before = finished(mapfile)
        if mapfile.exists():
            shutil.copy(mapfile, tmp_path / f"before-{name}.map")
        with simulated_disk(
            image, tmp_path / f"sim-{name}", tmp_path / f"bad-{name}.map", log_reads=str(log)
        ) as disk:
            r = run_ddfs("rescue", "-q", "-r1", *plan, disk, str(out), str(mapfile), timeout=120)
        assert r.returncode == 0, r.stderr
        done = reads(log)
        assert done, f"copy {name} was not read"
        for pos, size, _ in done:
            for a, b in before:
                assert pos + size <= a or pos >= b, (
                    f"copy {name}: read {pos:#x}+{size:#x} overlaps finished {a:#x}-{b:#x}"
                )
    assert map_lines(mapfile)[1:] == [f"0x00000000  0x{SIZE:08X}  +"]
    assert out.read_bytes() == original
