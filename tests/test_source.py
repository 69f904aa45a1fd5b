"""The read primitive: errno classification, test mode, O_DIRECT widening."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from engine.errors import FatalReadError
from engine.map.blockmap import BlockMap
from engine.rescue.source import FATAL_ERRNOS, Source, classify_error


@pytest.mark.parametrize("err", sorted(FATAL_ERRNOS))
def test_fatal_errnos_end_the_run(err: int) -> None:
    with pytest.raises(FatalReadError, match="Fatal error reading the input file"):
        classify_error(err, 0)
    classify_error(err, 512)  # with data read it is an ordinary read error


def test_ordinary_and_unaligned_errors() -> None:
    classify_error(errno.EIO, 0)
    classify_error(errno.ENOSPC, 0)
    with pytest.raises(FatalReadError, match="Unaligned read error"):
        classify_error(errno.EINVAL, 0)


def test_test_mode_fails_whole_reads_and_cuts_size(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    good = BlockMap.from_blocks([(0, 4096, "+"), (4096, 512, "-"), (4608, 8192, "+")])
    src = Source(str(infile), test_map=good)
    try:
        assert src.size == 4608 + 8192  # the apparent size ends at the last + block
        buf = memoryview(bytearray(8192))
        assert src.read_into(0, 4096, buf) == (4096, 0)
        assert src.read_into(0, 8192, buf) == (0, errno.EIO)  # touches the bad sector
        assert src.read_into(4608, 512, buf) == (512, 0)
    finally:
        src.close()


def test_direct_reads_are_widened_to_sectors(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    data = infile.read_bytes()
    src = Source(str(infile), direct=True)
    try:
        buf = memoryview(bytearray(5000))
        assert src.read_into(1000, 5000, buf) == (5000, 0)
        assert bytes(buf) == data[1000:6000]
    finally:
        src.close()
