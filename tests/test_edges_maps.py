"""Issue 17 item 1: maps at the edge of ddrescue's 64-bit range. A size or an end at or past
2^63 saturates as ddrescue's ``strtoll`` does, and a block is cut to end at 2^63 - 1
(``fix_size``); every command answers such a map as ddrescue and ddrescuelog do (the same
summary, the same refusal and exit status), never with a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.numbers import format_percentage
from tests.conftest import run_ddfs, run_ddrescue
from tests.mountproc import live_mount, status
from tests.simdisk import simulated_disk

MAPS = {
    "size-2to64": "0x0 ? 1\n0x0 0xFFFFFFFFFFFFFFFF +\n",
    "size-llmax": "0x0 ? 1\n0x0 0x7FFFFFFFFFFFFFFF +\n",
    "end-past-llmax": "0x0 ? 1\n0x7FFFFFFFFFFFFFF0 0x100 +\n",
    "size-2to63": "0x0 ? 1\n0x0 0x8000000000000000 -\n",
    "pos-2to72": (
        "0xFFFFFFFFFFFFFFFFFF ? 99999999999\n0x0 0x10000 +\n0x10000 0x7FFFFFFFFFFFFFFFFF ?\n"
    ),
}


@pytest.fixture(params=sorted(MAPS))
def edge_map(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "edge.map"
    path.write_text(MAPS[request.param])
    return path


def test_log_summary_as_ddrescuelog(edge_map: Path) -> None:
    ours = run_ddfs("log", "-t", str(edge_map))
    theirs = __import__("subprocess").run(
        ["ddrescuelog", "-t", str(edge_map)], capture_output=True, text=True
    )
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


def test_rescue_answers_as_ddrescue(edge_map: Path, tmp_path: Path) -> None:
    """As the map of the rescue, as a domain map (``-m``) and as a test map (``-H``)."""
    infile = tmp_path / "in"
    infile.write_bytes(os.urandom(1 << 20))
    for extra in ([], ["-m", str(edge_map)]):
        runs = []
        for name, run in (("ours", run_ddfs), ("theirs", run_ddrescue)):
            mapfile = tmp_path / f"{name}.map"
            if not extra:
                mapfile.write_bytes(edge_map.read_bytes())
            elif mapfile.exists():
                mapfile.unlink()
            args = [*extra, str(infile), str(tmp_path / f"{name}.out"), str(mapfile)]
            res = run("rescue", *args) if name == "ours" else run(*args)
            runs.append((res.returncode, res.stderr.split(":", 1)[-1].split("\n")[0]))
            assert "Traceback" not in res.stderr
        assert runs[0] == runs[1], (extra, runs)
    res = run_ddfs("rescue", "-H", str(edge_map), str(infile), str(tmp_path / "h.out"),
                   str(tmp_path / "h.map"))  # fmt: skip
    # (a test map without a readable block: ddfs says the input is empty; ddrescue spins)
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr


def test_every_reader_of_a_map(edge_map: Path, tmp_path: Path) -> None:
    """``status``, ``map``, ``report``, ``mount`` (a refusal: the map is larger than the
    input) and ``simulate --bad`` answer without a traceback."""
    infile = tmp_path / "in"
    infile.write_bytes(bytes(1 << 20))
    for args in (
        ["status", str(edge_map)],
        ["map", str(edge_map), "-o", str(tmp_path / "m.png")],
        ["report", str(infile), str(edge_map)],
        ["log", "-D", str(edge_map)],
    ):
        res = run_ddfs(*args)
        assert res.returncode in (0, 1, 2) and "Traceback" not in res.stderr, (args, res.stderr)
    (tmp_path / "mnt").mkdir()
    copy = tmp_path / "copy.map"
    copy.write_bytes(edge_map.read_bytes())
    files = [str(infile), str(tmp_path / "o"), str(copy)]
    refused = run_ddfs("rescue", "-q", *files)
    copy.write_bytes(edge_map.read_bytes())
    if "past end of input file" in refused.stderr:  # the same refusal, the map left alone
        res = run_ddfs("mount", *files, str(tmp_path / "mnt"), timeout=60)
        assert res.returncode == 1 and "past end of input file" in res.stderr, res.stderr
        assert copy.read_bytes() == edge_map.read_bytes()
    else:
        with live_mount(*files, tmp_path / "mnt", "-q"):
            assert status(tmp_path / "mnt")["size"] == 1 << 20
    (tmp_path / "sim").mkdir()
    try:
        with simulated_disk(infile, tmp_path / "sim", edge_map) as disk:
            assert os.path.getsize(disk) == 1 << 20
    except RuntimeError as exc:  # a test map past the image is refused in one message
        assert "past end of input file" in str(exc) and "Traceback" not in str(exc)


@pytest.mark.parametrize(
    ("num", "den", "text"),
    [
        ((1 << 63) - 1, (1 << 63) - 1, "100.00%"),  # the 64-bit steps of ddrescue's division
        (1, 3, " 33.33%"),
        (2, 3, " 66.67%"),
        (1, 2, " 50%"),
        (0, 5, "  0%"),
        (99999, 100000, "100.00%"),  # rounded up through the carry
    ],
)
def test_format_percentage_as_ddrescue(num: int, den: int, text: str) -> None:
    assert format_percentage(num, den) == text
