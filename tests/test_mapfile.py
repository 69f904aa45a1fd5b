"""Mapfile reading and writing against GNU ddrescue 1.27 (the oracle) and the spec (§1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import MapfileError
from engine.map.blockmap import BlockMap
from engine.map.mapfile import (
    iter_mapfile_text,
    mapfile_text,
    parse_mapfile,
    parse_mapfile_text,
    save_mapfile,
)
from tests.conftest import map_lines, run_ddfs, run_ddrescue
from tests.oracle import SCHEDULE_127

MALFORMED = {
    "gap": ("0 ?\n0 0x100 +\n0x200 0x100 ?\n", 3, "Blocks are not contiguous."),
    "overlap": ("0 ?\n0 0x200 +\n0x100 0x100 ?\n", 3, "Blocks are not contiguous."),
    "status word": ("x 1\n", 1, "Bad or missing status line."),
    "pass zero": ("0 ? 0\n", 1, "Bad or missing status line."),
    "bad phase": ("0 Q 1\n", 1, "Bad or missing status line."),
    "negative pos": ("-1 ? 1\n", 1, "Bad or missing status line."),
    "one field": ("# c\n0x100\n", 2, "Bad or missing status line."),
    "bad status": ("0 ?\n0 0x100 Q\n", 2, "Bad block line in list."),
    "negative size": ("0 ?\n0 -5 +\n", 2, "Bad block line in list."),
    "two fields": ("0 ?\n\n0 0x100\n", 3, "Bad block line in list."),
    "zero size": ("0 ?\n0 0x100 +\n0x100 0 ?\n", 3, "Bad block line in list."),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_mapfile_exit_2_untouched_like_ddrescue(
    name: str, tmp_path: Path, random_file
) -> None:
    text, line, what = MALFORMED[name]
    infile = random_file(1 << 20)
    results = {}
    for tool, run in (("ddrescue", run_ddrescue), ("ddfs", run_ddfs)):
        mp = tmp_path / f"{tool}.map"
        mp.write_text(text)
        args = ("rescue",) if tool == "ddfs" else ()
        res = run(*args, str(infile), str(tmp_path / f"{tool}.out"), str(mp))
        assert mp.read_text() == text, f"{tool} changed the mapfile"
        assert not (tmp_path / f"{tool}.out").exists()
        results[tool] = res
        assert f"Error in mapfile, line {line}: {what}" in res.stderr, res.stderr
    assert results["ddfs"].returncode == results["ddrescue"].returncode == 2


def test_lenient_reading() -> None:
    text = (
        "# comment\n\n   # indented comment\n  0x400 ?\n"
        "0 0x400 + trailing words\n"
        "0x400 010 -#not a comment\n"
        "1032 0X1F8 ?   # comment after blank\n"
    )
    data = parse_mapfile_text(text)
    assert (data.current_pos, data.current_status, data.current_pass) == (0x400, "?", 1)
    assert list(data.bmap) == [(0, 0x400, "+"), (0x400, 8, "-"), (1032, 0x1F8, "?")]
    assert not data.blank


def test_empty_and_comment_only_are_blank() -> None:
    for text in ("", "# nothing\n\n   \n"):
        data = parse_mapfile_text(text)
        assert data.blank and data.bmap.end == 0
        assert (data.current_pos, data.current_status, data.current_pass) == (0, "?", 1)


def test_first_block_may_start_late_and_zero_block() -> None:
    data = parse_mapfile_text("0 + 3\n0x200 0x200 +\n")
    assert list(data.bmap) == [(0, 0x200, "?"), (0x200, 0x200, "+")]
    assert data.current_pass == 3
    assert parse_mapfile_text("0 ?\n0 0 +\n").bmap.end == 0


def test_writer_format_is_ddrescues() -> None:
    bm = BlockMap.from_blocks([(0, 0x2008200, "+"), (0x2008200, 0x10000, "-")])
    bm.set_end(0x4000000, "+")
    text = mapfile_text(bm, 0x02017E00, "+", 1)
    assert text.splitlines() == [
        "# current_pos  current_status  current_pass",
        "0x02017E00     +               1",
        "#      pos        size  status",
        "0x00000000  0x02008200  +",
        "0x02008200  0x00010000  -",
        "0x02018200  0x01FE7E00  +",
    ]
    big = BlockMap(0x7FFFFFFFFFFFFFFF)
    assert "0x00000000  0x7FFFFFFFFFFFFFFF  ?" in mapfile_text(big)


def test_new_mapfile_matches_ddrescue(tmp_path: Path, random_file) -> None:
    """Behaviour 1: the initial file and the final map of a clean copy equal ddrescue's."""
    infile = random_file(3 << 20)
    run_ddrescue("-q", str(infile), str(tmp_path / "o1"), str(tmp_path / "m1"))
    res = run_ddfs(
        "rescue", "-q", "--schedule=ddrescue-1.27", str(infile), str(tmp_path / "o2"),
        str(tmp_path / "m2"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert map_lines(tmp_path / "m1") == map_lines(tmp_path / "m2")
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "o2").read_bytes()


def test_round_trip_and_ddrescuelog_accepts(tmp_path: Path) -> None:
    import random

    rng = random.Random(5)
    blocks = []
    pos = 0
    for _ in range(5000):
        size = rng.choice([512, 4096, 65536, 1 << 20])
        blocks.append((pos, size, rng.choice("?*/-+")))
        pos += size
    bm = BlockMap.from_blocks(blocks)
    path = tmp_path / "m"
    save_mapfile(str(path), iter_mapfile_text(bm, 0x1234, "/", 1, "# hdr\n"))
    back = parse_mapfile(str(path))
    assert list(back.bmap) == list(bm)
    assert (back.current_pos, back.current_status, back.current_pass) == (0x1234, "/", 1)
    import subprocess

    res = subprocess.run(["ddrescuelog", "-t", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "scraping" in res.stdout


def test_atomic_save_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "m"
    bm = BlockMap(1 << 20)
    save_mapfile(str(path), iter_mapfile_text(bm, 0, "?", 1, ""))
    first = path.read_text()
    bm.set_status(0, 4096, "+")
    save_mapfile(str(path), iter_mapfile_text(bm, 0, "?", 1, ""), rotate_backup=True)
    assert (tmp_path / "m.bak").read_text() == first
    assert parse_mapfile(str(path)).bmap.size_of("+") == 4096
    assert sorted(os.listdir(tmp_path)) == ["m", "m.bak"], "no temporary file left behind"


def test_failed_save_leaves_old_map(tmp_path: Path) -> None:
    path = tmp_path / "m"
    save_mapfile(str(path), iter_mapfile_text(BlockMap(512), 0, "?", 1, ""))
    before = path.read_text()

    def pieces():
        yield "0 ?\n"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        save_mapfile(str(path), pieces())
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["m"]


def test_error_carries_line_and_exit_code() -> None:
    with pytest.raises(MapfileError) as info:
        parse_mapfile_text("0 ?\n0 1 +\n2 1 +\n", name="m")
    assert info.value.exit_code == 2 and info.value.line == 3


def test_loose_reading_sorts_and_fills() -> None:
    data = parse_mapfile_text("0 ?\n0x400 0x200 +\n0 0x200 +\n0x100 0x100 +\n", loose=True)
    assert list(data.bmap) == [(0, 0x200, "+"), (0x200, 0x200, "?"), (0x400, 0x200, "+")]
    with pytest.raises(MapfileError, match="different status overlap"):
        parse_mapfile_text("0 ?\n0 0x200 +\n0x100 0x200 -\n", loose=True)


NORMALISE = {
    "subsector join": "0 ?\n0 0x1100 ?\n0x1100 0x1100 *\n0x2200 0x100 /\n0x2300 0x5d00 -\n"
    "0x8000 0xF8000 +\n",
    "join towards the right": "0 ?\n0 0x1100 -\n0x1100 0x3F00 ?\n0x5000 0xFB000 +\n",
    "short map extended": "0 ?\n0 0x1000 +\n0x1000 0x1000 -\n",
    "unfinished tail cropped": "0 ?\n0 0x1000 +\n0x1000 0x200000 *\n",
    "late first block": "0 ?\n0x3000 0x1000 -\n",
}


@pytest.mark.parametrize("name", sorted(NORMALISE))
def test_normalisation_like_ddrescue(name: str, tmp_path: Path, random_file) -> None:
    """§1.4: extend/crop to the input size and the subsector join, with no read done."""
    infile = random_file(1 << 20)
    maps = []
    for tool, run in (("ddrescue", run_ddrescue), ("ddfs", run_ddfs)):
        mp = tmp_path / f"{tool}.map"
        mp.write_text(NORMALISE[name])
        args = ("rescue", *SCHEDULE_127) if tool == "ddfs" else ()  # 1.30 would sweep
        opts = ("-q", "-b4096", "--cpass=0", "--no-trim", "-n")
        res = run(*args, *opts, str(infile), str(tmp_path / f"{tool}.out"), str(mp))
        assert res.returncode == 0, res.stderr
        maps.append(map_lines(mp))
    assert maps[0] == maps[1]
