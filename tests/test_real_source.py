"""``ddfs rescue`` through a real failing source (a ``ddfs simulate`` disk and a loop device on
it) reaches the same final map and bytes as GNU ddrescue on the same disk."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd, map_lines, run_ddfs, run_ddrescue
from tests.oracle import SCHEDULE_127
from tests.simdisk import loop_device, simulated_disk
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse
SIZE = 16 << 20
BAD = [
    (0x100000, 0x10000),
    (0x408200, 0x1000),
    (0x800000, 512),
    (0xA00200, 0x600),
    (0xF00000, 0x20000),
]


@pytest.fixture
def disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(9).randbytes(SIZE))
    write_testmap(tmp_path / "bad.map", SIZE, BAD)
    (tmp_path / "sim").mkdir()
    with simulated_disk(image, tmp_path / "sim", tmp_path / "bad.map") as dev:
        yield image, dev


def check_same(tmp_path: Path, source: str, *opts: str) -> None:
    a = run_ddrescue("-q", *opts, source, str(tmp_path / "o1"), str(tmp_path / "m1"))
    b = run_ddfs(
        "rescue", "-q", *SCHEDULE_127, *opts, source, str(tmp_path / "o2"), str(tmp_path / "m2")
    )
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert map_lines(tmp_path / "m1") == map_lines(tmp_path / "m2")
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "o2").read_bytes()
    bad = [ln for ln in map_lines(tmp_path / "m2")[1:] if not ln.endswith("+")]
    assert [(int(p, 0), int(s, 0)) for p, s, _ in (ln.split() for ln in bad)] == BAD


@pytest.mark.parametrize("opts", [(), ("-R",), ("-r1", "-c16")])
def test_same_as_ddrescue_on_simulated_disk(tmp_path: Path, disk, opts: tuple[str, ...]) -> None:
    _, dev = disk
    check_same(tmp_path, dev, *opts)


def test_same_as_ddrescue_on_loop_device(tmp_path: Path, disk) -> None:
    _, dev = disk
    with loop_device(dev) as loop:
        check_same(tmp_path, loop, "-d")


def test_periodic_saves_during_a_slow_rescue(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(2).randbytes(SIZE))
    write_testmap(tmp_path / "bad.map", SIZE, BAD)
    (tmp_path / "sim").mkdir()
    mp = tmp_path / "map"
    seen: set[str] = set()
    with simulated_disk(image, tmp_path / "sim", tmp_path / "bad.map", rate="4Mi") as dev:
        proc = subprocess.Popen(
            ddfs_cmd("rescue", "-q", "--mapfile-interval=1", dev, str(tmp_path / "out"), str(mp))
        )
        try:
            while proc.poll() is None:
                if mp.exists():
                    text = mp.read_text()
                    if text not in seen:
                        seen.add(text)
                        check = subprocess.run(
                            ["ddrescuelog", "-t", "-"], input=text, capture_output=True, text=True
                        )
                        assert check.returncode == 0, text
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert len(seen) >= 3, "the map should be saved about once a second"
