"""The live mount's pure model and read policy, tested without mounting (trio, real engine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from ddfs.live.reader import ImageReader, Unreadable
from ddfs.live.tree import SequentialDetector
from ddfs.live.view import View
from engine.metadata.partitions import Partition
from engine.ondemand.facade import LiveRescue, build_live
from engine.options import RescueOptions

BAD = (0x400000, 0x10000)
TESTMAP = "0 + 1\n0 0x400000 +\n0x400000 0x10000 -\n0x410000 0x3F0000 +\n"


@contextmanager
def engine(tmp_path: Path, infile: Path, delay: float = 0.0) -> Iterator[LiveRescue]:
    """The rescue of ``infile`` (test map :data:`TESTMAP`) running in its engine thread, as the
    live view sees it (no metadata planning: the schedule alone)."""
    (tmp_path / "tm").write_text(TESTMAP)
    opts = RescueOptions(test_map=str(tmp_path / "tm"))
    live, _ = build_live(
        str(infile), str(tmp_path / "out"), str(tmp_path / "map"), opts, plan_first=False
    )
    if delay:
        source = live.book.source
        real = source.read_into

        def slow(pos: int, size: int, buf: memoryview) -> tuple[int, int]:
            time.sleep(delay)
            return real(pos, size, buf)

        source.read_into = slow  # type: ignore[method-assign]
    live.start()
    try:
        yield live
    finally:
        live.stop()
        assert live.join(20)


def test_sequential_detector() -> None:
    det = SequentialDetector(window=1 << 20)
    assert det.note(0, 4096) is None
    assert det.note(4096, 4096) == (8192, 1 << 20)
    assert det.note(8192, 4096) is None  # already ahead
    assert det.note(600_000, 4096) is None  # a jump resets the run
    assert det.note(604_096, 4096) == (608_192, 1 << 20)


async def test_reads_follow_the_map(tmp_path: Path, random_file) -> None:
    infile = random_file(8 << 20)
    original = infile.read_bytes()
    with engine(tmp_path, infile, delay=0.002) as live:
        view = View(live, 8 << 20)
        reader = ImageReader(view, str(tmp_path / "out"), timeout=10)
        try:
            # untried data far ahead of the background pass: rescued on demand
            pos = 7 << 20
            assert await reader.read(pos, 4096) == original[pos : pos + 4096]
            assert view.ondemand_reads == 1
            # the bad area: EIO when the read starts in it; a read that starts with good bytes
            # gets them, short (issue 17 item 8), and the next read, at the bad sector, EIO
            with pytest.raises(Unreadable):
                await reader.read(BAD[0], 1024)
            assert await reader.read(BAD[0] - 512, 1024) == original[BAD[0] - 512 : BAD[0]]
            with pytest.raises(Unreadable):
                await reader.read(BAD[0] - 512, 1024, strict=True)  # (a write's merge)
            # the zero policy serves good bytes and zeros for the bad part
            reader.unreadable = "zero"
            data = await reader.read(BAD[0] - 512, 1024)
            assert data == original[BAD[0] - 512 : BAD[0]] + bytes(512)
            status = view.status()
            assert status["ondemand"]["reads"] >= 2  # type: ignore[index]
        finally:
            reader.close()


async def test_timeout_answers_and_engine_keeps_going(tmp_path: Path, random_file) -> None:
    infile = random_file(8 << 20)
    with engine(tmp_path, infile, delay=0.3) as live:
        view = View(live, 8 << 20)
        reader = ImageReader(view, str(tmp_path / "out"), timeout=0.1)
        try:
            start = trio.current_time()
            with pytest.raises(Unreadable):
                await reader.read(6 << 20, 4096)
            assert trio.current_time() - start < 0.5  # by the deadline, not the disk's time
            assert view.ondemand_timeouts == 1
            for _ in range(50):  # the request stays queued; the engine finishes it
                if live.is_finished(6 << 20, 4096):
                    break
                await trio.sleep(0.05)
            assert live.is_finished(6 << 20, 4096)
        finally:
            reader.close()


def test_partitions_become_files(tmp_path: Path, random_file) -> None:
    infile = random_file(8 << 20)
    with engine(tmp_path, infile) as live:
        view = View(live, 8 << 20)
        view.set_partitions(
            [
                Partition(1, 1 << 20, 2 << 20, "mbr", "83"),
                Partition(5, 6 << 20, 4 << 20, "mbr", "83"),
            ]
        )
        names = [n.name for n in view.listing()]
        assert names == ["image", "mapfile", "status.json", "p1", "p5"]
        p5 = view.lookup("p5")
        assert p5 is not None and p5.size == 2 << 20  # clipped at the end of the disk
        assert view.disk_range(p5, 4096, 8192) == ((6 << 20) + 4096, 8192)
        assert view.disk_range(p5, p5.size - 10, 100) == ((6 << 20) + p5.size - 10, 10)
        text = view.mapfile_text().decode()
        assert "# current_pos  current_status  current_pass" in text
