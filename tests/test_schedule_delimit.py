"""ddfs's failure-aware schedule (``--schedule=ddfs``, the default) against ddrescue 1.30 and 1.27.

Dead heads: the test maps and ddrescue 1.30's figures on them are recorded in
``tests/data/deadhead`` (made with ddrescue 1.30's ``ddrescuelog --make-test``; README.md there
has the commands), since no 1.30 binary is here. ddfs runs them in test mode with the same
options (``-f -n -S -H``) and must need at most half of 1.30's failed reads before all the good
data is rescued, at most 1.1 times its reads, and rescue every good byte. Scattered bad areas
run side by side with GNU ddrescue 1.27: no more reads and no more disk time (the simulator's
latency model applied to the read log), and every readable byte rescued.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from engine.map.mapfile import parse_mapfile
from engine.schedule.delimit.predictor import BandPredictor
from tests.oracle import DDFS, DDRESCUE, scattered_areas, write_test_map

DATA = Path(__file__).parent / "data" / "deadhead"
FIGURES = json.loads((DATA / "figures.json").read_text())
SEEK, ERROR, RATE = 0.008, 0.050, 200 * 2**20  # bench/simulated_disk.py's latency model


def run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr


def count_reads(log: Path) -> dict[str, int]:
    """Reads and failed reads, in all and up to the last read that copied data."""
    n = failed = before = reads_before = 0
    for line in log.read_text().splitlines():
        if not line.startswith("0x"):
            continue
        fields = line.split()
        n += 1
        failed += int(fields[3]) > 0
        if int(fields[2]) > 0:
            reads_before, before = n, failed
    return {
        "reads": n,
        "failed": failed,
        "failed_before_good": before,
        "reads_before_good": reads_before,
    }


def disk_seconds(log: Path) -> float:
    """The simulated disk's busy time for the reads of a read log: a seek for a read that does
    not start where the previous one ended, the transfer of what was read, a failed read's time."""
    head, seconds = 0, 0.0
    for line in log.read_text().splitlines():
        if line.startswith("0x"):
            pos, size, copied, error = (int(f, 0) for f in line.split()[:4])
            seconds += (SEEK if pos != head else 0.0) + copied / RATE + (ERROR if error else 0.0)
            head = pos + size
    return seconds


def test_predictor_learns_a_period() -> None:
    p = BandPredictor()
    assert p.next_start(0) is None and p.end_after(0) is None
    for k in range(5):  # a dead head in forward order: 1000 bad sectors every 4000
        p.learn(k * 2048000 + 512000, k * 2048000 + 1024000)
    guess = p.next_start(5 * 2048000)
    assert guess is not None and guess.at == 5 * 2048000 + 512000
    end = p.end_after(guess.at)
    assert end is not None and end.at == 5 * 2048000 + 1024000
    assert end.window <= 8 * 512  # an exact pattern: the edges are looked for in 8 sectors


def test_predictor_keeps_no_period_of_scattered_areas() -> None:
    p = BandPredictor()
    for start, end in (
        (1000, 1512),
        (900_000, 901_000),
        (1_000_000, 1_004_096),
        (5 << 20, 6 << 20),
    ):
        p.learn(start, end)
    assert p.next_start(6 << 20) is None
    assert p.clear_ahead(6 << 20) == 0  # reads stay one cluster long


def _rescue(tmp_path: Path, test_map: Path, size: int, *extra: str) -> tuple[Path, Path]:
    infile, out, mapfile, log = (tmp_path / n for n in ("in.img", "out.img", "out.map", "reads"))
    with open(infile, "wb") as fh:
        fh.truncate(size)
    run([DDFS, "rescue", "-q", "-f", "-S", *extra, "-H", str(test_map), f"--log-reads={log}",
         str(infile), str(out), str(mapfile)])  # fmt: skip
    infile.unlink()
    out.unlink()
    return mapfile, log


@pytest.mark.parametrize("case", FIGURES, ids=[f["geometry"] for f in FIGURES])
def test_dead_head_beats_ddrescue_130(tmp_path: Path, case: dict) -> None:  # type: ignore[type-arg]
    test_map = tmp_path / "test.map"
    test_map.write_bytes(gzip.decompress((DATA / case["map"]).read_bytes()))
    mapfile, log = _rescue(tmp_path, test_map, case["size"], "-n")
    ours, theirs = count_reads(log), case["ddrescue_1.30"]
    print(f"{case['geometry']}: ddfs {ours}, ddrescue 1.30 {theirs}")
    assert ours["failed_before_good"] * 2 <= theirs["failed_before_good"]
    assert ours["reads_before_good"] <= 1.1 * theirs["reads_before_good"]
    good = parse_mapfile(str(test_map)).bmap.size_of("+")
    assert parse_mapfile(str(mapfile)).bmap.size_of("+") == good  # every good byte


@pytest.mark.parametrize(
    "size,count,sectors",
    [(64 << 20, 24, 2), (64 << 20, 200, 2), (256 << 20, 50, 64), (128 << 20, 10, 2048)],
)
def test_scattered_areas_cost_no_more_than_ddrescue_127(
    tmp_path: Path, size: int, count: int, sectors: int
) -> None:
    areas = scattered_areas(size, count, seed=count, max_sectors=sectors, multi=0.3)
    test_map = write_test_map(tmp_path / "t.map", size, areas)
    mapfile, log = _rescue(tmp_path, test_map, size)
    infile = tmp_path / "in.img"
    with open(infile, "wb") as fh:
        fh.truncate(size)
    ref_map, ref_log = tmp_path / "ref.map", tmp_path / "ref.log"
    assert DDRESCUE is not None
    run([DDRESCUE, "-q", "-f", "-S", "-H", str(test_map), f"--log-reads={ref_log}", str(infile),
         str(tmp_path / "ref.img"), str(ref_map)])  # fmt: skip
    os.unlink(infile)
    ours, theirs = count_reads(log), count_reads(ref_log)
    assert ours["reads"] <= theirs["reads"]
    assert disk_seconds(log) <= disk_seconds(ref_log)
    # every readable byte, as ddrescue (which may leave good sectors inside its '-' areas)
    good = parse_mapfile(str(test_map)).bmap.size_of("+")
    assert parse_mapfile(str(mapfile)).bmap.size_of("+") == good
    assert parse_mapfile(str(ref_map)).bmap.size_of("+") <= good


def test_resumes_a_map_ddrescue_130_saved_while_sweeping(tmp_path: Path) -> None:
    """ddrescue 1.30 saves ``%`` in the status line while sweeping: ddfs reads it (as copying),
    resumes and finishes, and leaves a map that ddrescuelog 1.27 reads."""
    test_map, mapfile = tmp_path / "test.map", tmp_path / "rescue.map"
    test_map.write_bytes(gzip.decompress((DATA / "d00_sweep_source.map.gz").read_bytes()))
    mapfile.write_bytes(gzip.decompress((DATA / "d01_sweeping.map.gz").read_bytes()))
    assert "     %     " in mapfile.read_text()
    before = parse_mapfile(str(mapfile)).bmap.size_of("+")
    size = parse_mapfile(str(test_map)).bmap.end
    infile = tmp_path / "in.img"
    with open(infile, "wb") as fh:
        fh.truncate(size)
    out = tmp_path / "out.img"
    run([DDFS, "rescue", "-q", "-f", "-n", "-S", "-H", str(test_map), str(infile), str(out),
         str(mapfile)])  # fmt: skip
    after = parse_mapfile(str(mapfile))
    assert after.bmap.size_of("+") == parse_mapfile(str(test_map)).bmap.size_of("+") >= before
    assert after.current_status in "+/"  # finished or, with -n, up to scraping
    res = subprocess.run(["ddrescuelog", "-t", str(mapfile)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr  # GNU ddrescuelog 1.27 reads what ddfs left
