"""A dead-head disk through a real I/O path rescues as test mode predicts (issue 13).

The disk: the first cylinders of a dead-head test map of ``tests/data/deadhead`` (made by
ddrescue 1.30's ``ddrescuelog --make-test``) over an image of seeded random bytes. Test mode
(``ddfs rescue -H TESTMAP`` on the image file) predicts the rescue; the real one reads the
image served by ``ddfs simulate --bad TESTMAP`` with latency, through a read-only loop device
(the kernel's block path, EIO from the driver). Both with the same options, as a user would:
``-d -n`` (direct I/O, no scraping: the dead-head benchmarks' phases) and
``--no-metadata-first``, which test mode implies (with metadata first, the real run's first
cluster would be read as 4 KiB of partition tables, then the rest).

What makes the comparison deterministic (see ``tests/deadhead_io.py``): direct I/O (``-d``),
so every read of the tool reaches the simulator as one request; the kernel may only cut a read
over 512 KiB into contiguous parts, where the buffer's physical pages lie (it changes from run
to run), and those parts are put together again. (Without ``-d`` the disk sees 4 KiB page
reads and read-ahead: about 3,700 requests for 500-800 reads, with or without
``blockdev --setra 0``.) The tools' schedules never look at the clock, so the latency changes
no read: the final map, the output and the read log are exact.

Checked, for ddfs and GNU ddrescue 1.27 alike: the same final map (status line and blocks),
output bytes and read log as test mode; the disk saw the tool's reads and nothing else; the
model's time replayed over the disk's requests equals the simulator's ``busy_seconds``; the
disk time before all good data is test mode's prediction, plus at most what cutting a failed
read in parts costs (0 when none was cut; ddfs's long reads can fail on the first bad bands,
before it has learnt their period). Then ddfs's disk time and failed reads before all good
data are below ddrescue 1.27's, on the same simulated disk through the same path; ddrescue's
figures are asserted exactly (a fixed binary on a fixed map, 64 KiB reads that are never cut).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.map.mapfile import parse_mapfile
from tests.deadhead_io import (
    Figures,
    Model,
    Run,
    as_made,
    cut_failed_cost,
    cut_map,
    figures,
    group_requests,
    load_map,
    merged,
    predict,
    real_rescue,
)
from tests.oracle import DDFS, DDRESCUE, have_ddrescue
from tests.simdisk import have_fuse, have_loop

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not (have_fuse() and have_loop()), reason="needs FUSE, root, losetup"),
    pytest.mark.skipif(not have_ddrescue(), reason="needs GNU ddrescue 1.27"),
]
MiB = 1 << 20
# a tenth of bench/deadhead.py's disk (8 ms seek, 200 MiB/s, 50 ms per failed read): the
# simulator sleeps out the model's time
MODEL = Model(rate=2000 * MiB, seek_s=0.0008, error_s=0.005)
OPTIONS = ["-d", "-n"]
DDFS_TOOL = [DDFS, "rescue", *OPTIONS, "--no-metadata-first"]


@dataclass(frozen=True)
class Case:
    """A cut of a dead-head map, and GNU ddrescue 1.27's exact figures on it."""

    name: str
    limit: int
    ddrescue_reads: int
    ddrescue_failed: int  # failed reads before all good data


CASES = [
    pytest.param(Case("d07", 16_000_000, 1028, 87), id="d07-8-bands"),
    pytest.param(Case("d01", 120_000_000, 2607, 451), id="d01-6-zones", marks=pytest.mark.long),
]


def _disk(tmp_path: Path, case: Case) -> tuple[Path, Path, int]:
    text, size = cut_map(load_map(case.name), case.limit)
    testmap = tmp_path / "test.map"
    testmap.write_text(text)
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(13).randbytes(size))
    return testmap, image, size


def _check_prediction(predicted: Run, real: Run, testmap: Path, size: int) -> Figures:
    """The real run is the one test mode predicted, read for read, and the disk saw it; its
    figures timed as the disk saw the reads."""
    assert real.map_lines() == predicted.map_lines()
    assert real.same_result(predicted)  # the output bytes too
    reads = real.reads()
    assert reads == predicted.reads()
    assert real.requests is not None and real.stats is not None
    groups = group_requests(reads, real.requests)
    assert [merged(g) for g in groups] == as_made(reads)
    seen = figures(reads, testmap, size, MODEL, groups)
    assert seen.seconds == pytest.approx(real.stats["busy_seconds"], abs=1e-5)
    made = figures(reads, testmap, size, MODEL)
    _, most = cut_failed_cost(reads[: made.reads_before_good], groups, MODEL)
    extra = seen.seconds_before_good - made.seconds_before_good
    assert -1e-9 <= extra <= most + 1e-9  # 0 unless a failed read was cut in parts
    return seen


@pytest.mark.parametrize("case", CASES)
def test_real_path_rescues_as_test_mode_predicts(tmp_path: Path, case: Case) -> None:
    testmap, image, size = _disk(tmp_path, case)
    assert DDRESCUE is not None
    ddrescue = [DDRESCUE, *OPTIONS]
    ours = real_rescue(DDFS_TOOL, image, testmap, tmp_path, "ddfs", MODEL)
    predicted = predict(DDFS_TOOL, image, testmap, tmp_path, "ddfs-h")
    a = _check_prediction(predicted, ours, testmap, size)
    theirs = real_rescue(ddrescue, image, testmap, tmp_path, "ddr", MODEL)
    predicted = predict(ddrescue, image, testmap, tmp_path, "ddr-h")
    b = _check_prediction(predicted, theirs, testmap, size)

    good = parse_mapfile(str(testmap)).bmap.size_of("+")
    assert parse_mapfile(str(ours.mapfile)).bmap.size_of("+") == good  # every good byte
    print(f"{case.name} cut at {size}: ddfs {a} (wall {ours.wall:.2f} s)")
    print(f"{case.name} cut at {size}: ddrescue 1.27 {b} (wall {theirs.wall:.2f} s)")
    assert (b.reads, b.failed_before_good) == (case.ddrescue_reads, case.ddrescue_failed)
    assert a.seconds_before_good < b.seconds_before_good
    assert a.failed_before_good < b.failed_before_good
