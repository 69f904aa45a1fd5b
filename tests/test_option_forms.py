"""Option forms as GNU ddrescue takes or refuses them (issue 14: causes found by running
ddrescue's own test suites against ddfs, ``bench/ddrescue_testsuite.sh``), and ``-C`` with an
input shorter than the map. Each case was checked against ddrescue 1.27 and 1.30."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import map_lines
from tests.oracle import DDFS


def ddfs(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [DDFS, "rescue", *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=stdin)


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "1sB"],  # one unit at most after the number
        ["-K,"],  # nothing after the comma
        ["-K0,"],
        ["--mapfile-interval=30,"],
        ["--mapfile-interval=,4s"],  # sync interval under 5 s
        ["--mapfile-interval=3,4s"],
        ["-T", "1_"],  # '_' only between digits
        ["-T", "1."],
    ],
)
def test_forms_ddrescue_refuses(args: list[str], tmp_path: Path, random_file) -> None:
    infile = random_file(4096)
    res = ddfs("-q", *args, infile, tmp_path / "out")
    assert res.returncode == 1, res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["-K,64KiB"],
        ["-K", "128Ki,1Mi"],
        ["--mapfile-interval=30,60"],
        ["--mapfile-interval=,5s"],
        ["-T", "2_160.500_0m"],  # ddrescue 1.30: '_' between digits of a time interval
        ["-T", ".5m"],
        ["-a", "1ks", "-E", "1Kis"],
    ],
)
def test_forms_ddrescue_takes(args: list[str], tmp_path: Path, random_file) -> None:
    infile = random_file(4096)
    res = ddfs("-q", *args, infile, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out").read_bytes() == infile.read_bytes()


def test_complete_only_with_a_shorter_input(tmp_path: Path, random_file) -> None:
    """``-C`` keeps the map as it is: the part of it the input holds is completed, the rest of
    the map stays (ddrescue 1.27 and 1.30 do the same; ddfs used to refuse)."""
    infile = random_file(0x11800)
    mapfile = tmp_path / "map"
    mapfile.write_text(
        "0x00000000     +               1\n"
        "0x00000000  0x00008000  ?\n"
        "0x00008000  0x00009800  +\n"
        "0x00011800  0x00001000  +\n"
    )
    out = tmp_path / "out"
    out.write_bytes(b"\0" * 0x12800)
    res = ddfs("-q", "-R", "-C", infile, out, mapfile)
    assert res.returncode == 0, res.stderr
    assert map_lines(mapfile)[1:] == ["0x00000000  0x00012800  +"]
    assert out.read_bytes()[:0x8000] == infile.read_bytes()[:0x8000]


def test_reverse_sweeps_as_ddrescue_130(tmp_path: Path, random_file) -> None:
    """``--cpass=0`` with the default meanings skips copying but, as ddrescue 1.30, still sweeps
    the non-tried data; with ddrescue 1.27's meanings nothing is read."""
    infile = random_file(30000)
    for schedule, expected in (("ddfs", "+"), ("ddrescue-1.27", "?")):
        mapfile = tmp_path / f"{schedule}.map"
        mapfile.write_text("0x00000000     ?               1\n0x00000000  0x00003A98  ?\n")
        args = (f"--schedule={schedule}", "-q", "-R", "-s15000", "--cpass=0")
        res = ddfs(*args, infile, tmp_path / f"{schedule}.out", mapfile)
        assert res.returncode == 0, res.stderr
        assert map_lines(mapfile)[1].split()[2] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["IN"], "Both input and output files must be specified."),
        (["IN", "out", "map", "extra"], "Too many files."),
        (["-K", "IN", "out"], "Both input and output files must be specified."),
        (["--no-such-option", "IN", "out"], "No such option"),
    ],
)
def test_usage_errors_exit_1(args: list[str], message: str, tmp_path: Path, random_file) -> None:
    """ddrescue exits 1 on a usage error (click's own status would be 2)."""
    infile = random_file(4096)
    names = {"IN": str(infile)}
    res = ddfs("-q", *[names.get(a, a if a.startswith("-") else str(tmp_path / a)) for a in args])
    assert res.returncode == 1
    assert res.stderr.startswith(f"ddfs: {message}")
    assert "Try 'ddfs rescue --help' for more information." in res.stderr


def test_overlapping_copy_within_one_file(tmp_path: Path) -> None:
    """``--same-file -o45 --reverse`` moves data 45 bytes up within one file: only ddrescue's
    order (backwards) reads each part before it is overwritten, so nothing is read first for
    metadata (ddrescue's test suite, "combined rescue")."""
    data = bytes(range(256)) * 300
    f = tmp_path / "f"
    f.write_bytes(data)
    res = ddfs("-q", "--same-file", "-o45", f"-s{len(data)}", "--reverse", f, f)
    assert res.returncode == 0, res.stderr
    assert f.read_bytes()[45:] == data
