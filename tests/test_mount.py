"""The live mount for real: ``ddfs mount`` over a slow ``ddfs simulate`` disk with bad sectors."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from engine.map.mapfile import parse_mapfile
from tests.conftest import map_lines, run_ddfs
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import is_mounted, loop_device, simulated_disk

pytestmark = pytest.mark.fuse
SIZE = 32 << 20
BAD = [(0x0800000, 0x10000), (0x1400200, 0x3000), (0x1C00000, 512)]


def write_testmap(path: Path, size: int, bad: list[tuple[int, int]]) -> None:
    lines = ["0 + 1"]
    pos = 0
    for start, length in bad:
        if start > pos:
            lines.append(f"0x{pos:X} 0x{start - pos:X} +")
        lines.append(f"0x{start:X} 0x{length:X} -")
        pos = start + length
    lines.append(f"0x{pos:X} 0x{size - pos:X} +")
    path.write_text("\n".join(lines) + "\n")


def is_bad(pos: int, size: int) -> bool:
    return any(pos < s + n and s < pos + size for s, n in BAD)


@pytest.fixture
def disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(3).randbytes(SIZE))
    write_testmap(tmp_path / "bad.map", SIZE, BAD)
    (tmp_path / "sim").mkdir()
    with simulated_disk(
        image, tmp_path / "sim", tmp_path / "bad.map", rate="16Mi", error_ms="2"
    ) as dev:
        yield image, dev


def test_reads_during_rescue_and_final_map(tmp_path: Path, disk) -> None:
    image, dev = disk
    original = image.read_bytes()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    errors: list[str] = []
    eio = []
    short: list[int] = []
    with live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q") as m:
        assert status(mnt)["phase"] == "copying"

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            fd = os.open(mnt / "image", os.O_RDONLY)
            try:
                for _ in range(40):
                    size = rng.choice([4096, 65536, 1 << 20])
                    pos = rng.randrange(0, SIZE - size) // 512 * 512
                    try:
                        data = os.pread(fd, size, pos)
                    except OSError as exc:
                        if exc.errno != errno.EIO or not is_bad(pos, size):
                            errors.append(f"{pos:#x}+{size}: {exc}")
                        eio.append(pos)
                        continue
                    if data != original[pos : pos + len(data)] or not data:
                        errors.append(f"{pos:#x}+{size}: wrong data")
                    elif len(data) < size and not is_bad(pos + len(data), 512):
                        short.append(pos)  # a short read: stopped where not rescued yet
            finally:
                os.close(fd)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]
        mid = status(mnt)
        assert mid["ondemand"]["reads"] > 0
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            with pytest.raises(OSError) as info:
                os.pread(fd, 512, BAD[2][0])
        finally:
            os.close(fd)
        assert info.value.errno == errno.EIO
        wait_for(lambda: status(mnt)["phase"] == "finished", 120, "rescue did not finish")
        final_view = (mnt / "mapfile").read_text()
        assert subprocess.run(["fusermount3", "-u", str(mnt)]).returncode == 0
        assert m.wait(20) == 0, m.stderr()
    assert not is_mounted(mnt)
    got = parse_mapfile(str(tmp_path / "map")).bmap
    assert [(p, s) for p, s, st in got if st != "+"] == BAD
    assert [ln for ln in final_view.splitlines() if not ln.startswith("#")][1:] == map_lines(
        tmp_path / "map"
    )[1:]
    out = (tmp_path / "out").read_bytes()
    for p, s, st in got:
        if st == "+":
            assert out[p : p + s] == original[p : p + s]
    # the same final map as `ddfs rescue` alone on the same simulated disk
    alone = run_ddfs("rescue", "-q", dev, str(tmp_path / "out2"), str(tmp_path / "map2"))
    assert alone.returncode == 0, alone.stderr
    assert map_lines(tmp_path / "map2")[1:] == map_lines(tmp_path / "map")[1:]


def test_sigterm_stops_cleanly(tmp_path: Path, disk) -> None:
    _, dev = disk
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q") as m:
        wait_for(lambda: status(mnt)["bytes"]["finished"] > 0, 20, "no progress")
        m.proc.send_signal(signal.SIGTERM)
        assert m.wait(20) == -signal.SIGTERM, m.stderr()
    assert not is_mounted(mnt)
    lines = map_lines(tmp_path / "map")
    assert lines[0].split()[1] == "?"  # stopped in the copying phase, map saved
    assert (
        subprocess.run(["ddrescuelog", "-t", str(tmp_path / "map")], capture_output=True).returncode
        == 0
    )


def test_refusals(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "x").write_text("not empty")
    res = run_ddfs("mount", str(infile), str(tmp_path / "o"), str(tmp_path / "m"), str(mnt))
    assert res.returncode == 1 and "not empty" in res.stderr
    assert not (tmp_path / "m").exists()


def test_image_as_loop_device_and_mmap(tmp_path: Path, random_file) -> None:
    import mmap

    infile = random_file(4 << 20)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(infile, tmp_path / "out", tmp_path / "map", mnt, "-q"):
        wait_for(lambda: status(mnt)["phase"] == "finished", 30, "rescue did not finish")
        with loop_device(mnt / "image") as dev, open(dev, "rb") as fh:
            assert fh.read() == infile.read_bytes()
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            private = mmap.mmap(fd, 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
            assert private[:4096] == infile.read_bytes()[:4096]
            private.close()
            with pytest.raises(OSError):  # direct_io files refuse shared mappings
                mmap.mmap(fd, 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
