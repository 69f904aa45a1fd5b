"""``ddfs log -H`` (``--make-test``) against GNU ddrescuelog 1.30's recorded output.

CI has no ddrescuelog 1.30, so the oracles are recordings: ``tests/data/maketest`` (made by its
``record.py``; README.md there names the 1.30 build) holds, for each case, 1.30's exit status,
the first line of its stderr and the map it wrote, and ``tests/data/deadhead`` holds the test
maps 1.30 made for the dead-head benchmarks. Nothing here is skipped.

What "the same map" means: every line from the fourth on is identical (``# Finished``, the
status line and its comments, every block line). The first three lines are exempt, and only
their form is checked, because they cannot be the same: line 1 names the program and its
version (``# Mapfile. Created by GNU ddrescuelog version 1.30`` / ``... ddfs log ...``), line 2
is the command line, line 3 the time the program started.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import DdfsError
from engine.map.logtool_maketest import Geometry, make_test_arrays, make_test_text, parse_geometry
from tests.conftest import run_ddfs

DATA = Path(__file__).resolve().parent / "data" / "maketest"
DEADHEAD = Path(__file__).resolve().parent / "data" / "deadhead"
RECORDED = json.loads((DATA / "cases.json").read_text())
CASES = {c["name"]: c for c in RECORDED["cases"]}
DDRESCUELOG_127 = "/usr/bin/ddrescuelog"  # Debian's gddrescue, installed by `make test`
PRE = {"map": "0 + 1\n0 0x1000 +\n", "garbage": "not a mapfile\n"}
HEADER = [
    re.compile(r"# Mapfile\. Created by ddfs log \S+ \(GNU ddrescue 1\.27 format\)"),
    re.compile(r"# Command line: ddfs log .*"),
    re.compile(r"# Start time:   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"),
]


def _args(case: dict[str, Any]) -> list[str]:
    return [a.replace("OUT", f"{case['name']}.map") for a in case["args"]]


def _run(case: dict[str, Any], work: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``ddfs log`` as 1.30 was run; return the process and the map it wrote (or "")."""
    out = work / f"{case['name']}.map"
    if "pre" in case:
        out.write_text(PRE[case["pre"]])
    args = _args(case)
    done = run_ddfs("log", *args, cwd=work)
    if done.returncode != 0:
        return done, ""
    return done, done.stdout if "-" in args else out.read_text()


def _compared(text: str) -> list[str]:
    """The lines that must be identical: all but the first three, which are checked here."""
    lines = text.splitlines(keepends=True)
    for pattern, line in zip(HEADER, lines[:3], strict=True):
        assert pattern.fullmatch(line.rstrip("\n")), line
    return lines[3:]


def _recorded_lines(name: str) -> list[str]:
    text = gzip.decompress((DATA / name).read_bytes()).decode("ascii")
    lines = text.splitlines(keepends=True)
    assert lines[0] == "# Mapfile. Created by GNU ddrescuelog version 1.30\n"
    return lines[3:]


MAP_CASES = [n for n, c in CASES.items() if c["exit"] == 0]
ERROR_CASES = [n for n, c in CASES.items() if c["exit"] not in (0, 136)]


def test_recordings_are_there() -> None:
    assert RECORDED["version"] == "GNU ddrescuelog 1.30"
    assert len(MAP_CASES) >= 25 and len(ERROR_CASES) >= 25
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 200_000


@pytest.mark.parametrize("name", MAP_CASES)
def test_same_map_as_ddrescuelog_130(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    done, text = _run(case, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    ours = _compared(text)
    assert ours[0] == "# Finished\n"
    if "map" in case:
        assert ours == _recorded_lines(case["map"])
    else:  # a big map: its hash
        assert len(ours) == case["lines"]
        assert hashlib.sha256("".join(ours).encode()).hexdigest() == case["sha256"]


@pytest.mark.parametrize("name", ERROR_CASES)
def test_same_error_as_ddrescuelog_130(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    done, _ = _run(case, tmp_path)
    assert done.returncode == case["exit"]
    assert done.stderr.split("\n")[0] == case["stderr"].replace("ddrescuelog: ", "ddfs: ", 1)
    if "pre" in case:  # an existing file is left as it was
        assert (tmp_path / f"{name}.map").read_text() == PRE[case["pre"]]
    else:
        assert not (tmp_path / f"{name}.map").exists()


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["exit"] == 136])
def test_one_zone_is_refused_where_130_crashes(name: str, tmp_path: Path) -> None:
    """ddrescuelog 1.30 divides by Z - 1 = 0 for an FF geometry of one zone and dies of SIGFPE
    (recorded: exit 136, no map); ddfs refuses it with a message (exit 1), also with no map."""
    done, _ = _run(CASES[name], tmp_path)
    assert done.returncode == 1
    assert "'FF' needs at least 2 zones" in done.stderr
    assert not (tmp_path / f"{name}.map").exists()


def _deadhead_maps() -> list[tuple[str, str]]:
    """(geometry, map) of the dead-head test maps, made by ``ddrescuelog -H`` 1.30 too."""
    figures = json.loads((DEADHEAD / "figures.json").read_text())
    out = [(f["geometry"], f["map"]) for f in figures]
    # d00 is not in figures.json (README.md there): its geometry is in its header
    head = gzip.decompress((DEADHEAD / "d00_sweep_source.map.gz").read_bytes()).decode()
    command = re.search(r"# Command line: \S+ -H (\S+) ", head)
    assert command
    return [*out, (command.group(1), "d00_sweep_source.map.gz")]


@pytest.mark.parametrize(("geometry", "name"), _deadhead_maps())
def test_same_as_deadhead_maps(geometry: str, name: str, tmp_path: Path) -> None:
    done = run_ddfs("log", "-H", geometry, "out.map", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    recorded = gzip.decompress((DEADHEAD / name).read_bytes()).decode().splitlines(True)
    assert recorded[0] == "# Mapfile. Created by GNU ddrescuelog version 1.30\n"
    assert _compared((tmp_path / "out.map").read_text()) == recorded[3:]


@pytest.mark.parametrize(
    "name", ["ff_doc_4h", "f_4h_bad_middle", "f_1h", "ff_bs1", "f_3h_bad_middle_4k"]
)
def test_ddrescuelog_127_reads_the_map(name: str, tmp_path: Path) -> None:
    """GNU ddrescuelog 1.27 reads ddfs's map, and sees what it sees in 1.30's."""
    done, _ = _run(CASES[name], tmp_path)
    assert done.returncode == 0
    gnu_map = tmp_path / "gnu.map"
    gnu_map.write_bytes(gzip.decompress((DATA / CASES[name]["map"]).read_bytes()))
    ours = subprocess.run(
        [DDRESCUELOG_127, "-t", f"{name}.map"], cwd=tmp_path, capture_output=True, text=True
    )
    theirs = subprocess.run(
        [DDRESCUELOG_127, "-t", "gnu.map"], cwd=tmp_path, capture_output=True, text=True
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_force_overwrites_and_stdout_needs_no_force(tmp_path: Path) -> None:
    out = tmp_path / "m.map"
    out.write_text("0 + 1\n0 0x1000 +\n")
    assert run_ddfs("log", "-f", "-H", "40:2:8:F:1", "m.map", cwd=tmp_path).returncode == 0
    assert _compared(out.read_text()) == _recorded_lines(CASES["f_min_bad_last"]["map"])
    done = run_ddfs("log", "--make-test=41:3:9:F:2", "-", cwd=tmp_path)
    assert _compared(done.stdout) == _recorded_lines(CASES["f_stdout"]["map"])


def test_quiet_says_nothing(tmp_path: Path) -> None:
    done = run_ddfs("log", "-q", "-H", "39:2:8:F:0", "m.map", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, "")


def test_too_big_a_disk_is_refused(tmp_path: Path) -> None:
    """Past 2^63 - 1 bytes ddrescuelog 1.30 caps the blocks and writes size-0 lines that no
    ddrescue reads back; ddfs refuses (this takes -b 4 MB or more)."""
    done = run_ddfs("log", "-b", "256Mi", "-H", "1000000:256:10000:F:0", "m.map", cwd=tmp_path)
    assert done.returncode == 1
    assert "larger than 9223372036854775807 bytes" in done.stderr
    assert not (tmp_path / "m.map").exists()


# ---------------------------------------------------------------- the engine, in process


def _reference_blocks(geom: Geometry, bs: int) -> list[tuple[int, int, int]]:
    """The map built track by track, as the doc (docs of ddrescue 1.30) describes it."""
    tracks: list[tuple[int, bool]] = []  # (sectors, bad)
    if not geom.serpentine:
        for _ in range(geom.cylinders):
            tracks += [(geom.sectors, h == geom.bad_head) for h in range(geom.heads)]
    else:
        z_count, t = geom.zones, geom.tracks_zone
        for z in range(z_count):
            s = (geom.sectors * (z_count - 1 - z) + geom.last_sectors * z) // (z_count - 1)
            cyls = len(range(z * t, min(geom.cylinders, (z + 1) * t)))
            for h in range(geom.heads):
                tracks += [(s, h == geom.bad_head)] * cyls
    blocks: list[list[int]] = []
    pos = 0
    for sectors, bad in tracks:
        st = ord("-") if bad else ord("+")
        if blocks and blocks[-1][2] == st:
            blocks[-1][1] += sectors * bs
        else:
            blocks.append([pos, sectors * bs, st])
        pos += sectors * bs
    return [(p, s, st) for p, s, st in blocks]


def _random_geometry(rng: random.Random) -> str:
    c, h = rng.randint(40, 300), rng.randint(1, 9)
    s = rng.randint(8, 200)
    b = rng.randrange(h)
    if rng.random() < 0.3:
        return f"{c}:{h}:{s}:F:{b}"
    s2 = rng.choice([x for x in range(8, 200) if x != s])
    t = f",{rng.randint(8, c - 1)}" if rng.random() < 0.6 else ""
    return f"{c}:{h}:{s}-{s2}{t}:FF:{b}"


@pytest.mark.parametrize("seed", range(8))
def test_blocks_equal_a_track_by_track_build(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        arg, bs = _random_geometry(rng), rng.choice([1, 512, 4096])
        try:
            geom = parse_geometry(arg)
        except DdfsError:  # one zone (T = C // 1 when |S2 - S| = 1)
            continue
        starts, statuses, end = make_test_arrays(geom, bs)
        ends = [*starts[1:], end]
        ours = [(p, e - p, st) for p, e, st in zip(starts, ends, statuses, strict=True)]
        assert ours == _reference_blocks(geom, bs), (arg, bs)


def test_parse_geometry() -> None:
    assert parse_geometry("6000:4:1200-600,60:FF:2") == Geometry(6000, 4, 1200, 600, 60, True, 2)
    assert parse_geometry("2500:8:1400-700:FF:5").tracks_zone == 2500 // 24
    assert parse_geometry("0x30:3:1k:F:02") == Geometry(48, 3, 1000, 1000, 48, False, 2)
    assert parse_geometry("40Ki:2:8:F:0").cylinders == 40960
    with pytest.raises(DdfsError, match=r"\[8,40Ki\]"):
        parse_geometry("40Ki:2:8-16,7:FF:0", "--make-test")


def test_fast_for_big_geometries() -> None:
    """The doc's 1 TB-class example is 208 lines; a million cylinders F is two million."""
    t = time.perf_counter()
    text = "".join(make_test_text(parse_geometry("6000:4:1200-600,60:FF:2"), 512, "x"))
    assert time.perf_counter() - t < 0.5
    assert text.count("\n") == 208
    t = time.perf_counter()
    starts, _, end = make_test_arrays(parse_geometry("1000000:256:10000:F:0"), 512)
    assert time.perf_counter() - t < 5
    assert (len(starts), end) == (2_000_000, 1_000_000 * 256 * 10_000 * 512)
