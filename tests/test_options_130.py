"""ddrescue 1.28-1.30's options and changed meanings in ``ddfs rescue`` (issue 13).

The expected maps below are those GNU ddrescue 1.30 (built from tag v1.30, commit
cdc62377de10c89ec61e9962f22ab91d43c536dc) left with the same command on the same input when
these tests were written; the final maps depend only on the input, not on the schedule, so
they are asserted literally (CI has no 1.30 binary). ``--schedule=ddrescue-1.27`` keeps
ddrescue 1.27's meanings, checked here where they differ.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.conftest import map_lines
from tests.oracle import DDFS


def ddfs(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [DDFS, "rescue", *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def blocks(mapfile: Path) -> list[str]:
    """The block lines of a map (the status line's position depends on the schedule)."""
    return map_lines(mapfile)[1:]


def test_numbers_with_underscores(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    res = ddfs("-q", "-s", "65_536", "-i", "0x1_0000", infile, tmp_path / "o", tmp_path / "m")
    assert res.returncode == 0, res.stderr
    assert blocks(tmp_path / "m") == [
        "0x00000000  0x00010000  ?",
        "0x00010000  0x00010000  +",
        "0x00020000  0x000E0000  ?",
    ]
    bad = ddfs("-q", "-s", "64_Ki", infile, tmp_path / "o2", tmp_path / "m2")
    assert bad.returncode == 1
    assert bad.stderr == "ddfs: Bad or missing numerical argument in option '-s'.\n"


def test_size_output_uses_the_outputs_size(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    out = tmp_path / "o"
    out.write_bytes(b"\0" * 102400)
    res = ddfs("-q", "--size=output", infile, out, tmp_path / "m")
    assert res.returncode == 0, res.stderr
    assert blocks(tmp_path / "m") == ["0x00000000  0x00019000  +"]
    assert out.read_bytes() == infile.read_bytes()[:102400]
    old = ddfs("-q", "--schedule=ddrescue-1.27", "-s", "output", infile, out, tmp_path / "m2")
    assert old.returncode == 1
    assert "Bad or missing numerical argument in option '-s'" in old.stderr


def test_extend_outfile_zero_means_the_input_size(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    res = ddfs("-q", "-s", "64Ki", "-x", "0", infile, tmp_path / "o", tmp_path / "m")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o").stat().st_size == 1 << 20
    old = ddfs("-q", "--schedule=ddrescue-1.27", "-x", "0", infile, tmp_path / "o2")
    assert old.returncode == 1
    assert "Value out of limits [1," in old.stderr


def test_new_and_old_names_of_check_options(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    runs = {}
    for name in ("-I", "--check-input-size", "--verify-input-size"):
        runs[name] = ddfs(name, infile, tmp_path / "o", tmp_path / "absent.map")
        assert runs[name].returncode == 1
    assert runs["-I"].stderr == runs["--check-input-size"].stderr
    assert runs["-I"].stderr == runs["--verify-input-size"].stderr
    for name in ("-J", "--check-on-error", "--verify-on-error"):
        mp = tmp_path / f"{name}.map"
        res = ddfs("-q", name, infile, tmp_path / f"{name}.out", mp)
        assert res.returncode == 0, res.stderr
        assert blocks(mp) == ["0x00000000  0x00010000  +"]
    helptext = ddfs("--help").stdout
    assert "--check-on-error" in helptext and "--check-input-size" in helptext


def test_cpass_five_is_the_old_schedules_only(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    res = ddfs("-q", "--cpass=5", infile, tmp_path / "o", tmp_path / "m")
    assert res.returncode == 1
    assert res.stderr == "ddfs: Invalid pass number in option '--cpass'.\n"
    old = ddfs(
        "-q", "--schedule=ddrescue-1.27", "--cpass=5", infile, tmp_path / "o", tmp_path / "m"
    )
    assert old.returncode == 0, old.stderr


def periodic_map(path: Path, size: int = 16 << 20) -> None:
    """A test map of a head that fails for 64 KiB in every 512 KiB (the schedule learns it)."""
    lines = ["0x00000000     +               1"]
    for pos in range(0, size, 0x80000):
        lines.append(f"0x{pos:08X}  0x00070000  +")
        lines.append(f"0x{pos + 0x70000:08X}  0x00010000  -")
    path.write_text("\n".join(lines) + "\n")


def test_no_sweep_leaves_skipped_areas_unread(tmp_path: Path) -> None:
    """``-N`` (1.30: ``--no-sweep``): once the schedule has learned where the bad areas lie it
    jumps them; without ``-N`` they are read afterwards (every sector ends ``+`` or ``-``),
    with it they stay non-tried. With ``--schedule=ddrescue-1.27``, ``-N`` is 1.27's
    ``--no-trim``."""
    infile = tmp_path / "in"
    infile.write_bytes(b"")
    os.truncate(infile, 16 << 20)
    test_map = tmp_path / "test.map"
    periodic_map(test_map)
    swept, kept = tmp_path / "swept.map", tmp_path / "kept.map"
    assert ddfs("-q", "-H", test_map, infile, tmp_path / "o1", swept).returncode == 0
    assert ddfs("-q", "-N", "-H", test_map, infile, tmp_path / "o2", kept).returncode == 0
    assert blocks(swept) == map_lines(test_map)[1:-1]  # test mode ends at the last +
    statuses = [line.split()[2] for line in blocks(kept)]
    assert statuses.count("?") >= 16  # most bad areas were jumped, and stay unread
    finished = [line for line in blocks(kept) if line.endswith("+")]
    assert finished == [line for line in blocks(swept) if line.endswith("+")]
    old = {}
    for flag in ("-N", "--no-trim"):
        mp = tmp_path / f"old{flag}.map"
        args = ("-q", "--schedule=ddrescue-1.27", flag, "-H", test_map)
        res = ddfs(*args, infile, tmp_path / "o", mp)
        assert res.returncode == 0, res.stderr
        old[flag] = map_lines(mp)
    assert old["-N"] == old["--no-trim"]


RETRIM_MAP = """\
0x00000000     +               1
0x00000000  0x00000400  +
0x00000400  0x00000200  -
0x00000600  0x00000200  /
0x00000800  0x00000200  -
0x00000A00  0x00000200  ?
0x00000C00  0x00000200  /
0x00000E00  0x00000200  -
0x00001000  0x00000200  /
0x00001200  0x00000E00  +
"""


def test_retrim_marks_only_blocks_next_to_untried_or_good_data(tmp_path: Path, random_file) -> None:
    """``-M`` in 1.30 marks ``/`` and ``-`` blocks next to a ``?`` or ``+`` block only
    (``--cpass=0 -N --no-trim -n`` read nothing, so the map shows the marking)."""
    infile = random_file(0x2000)
    new, old = tmp_path / "new.map", tmp_path / "old.map"
    new.write_text(RETRIM_MAP)
    old.write_text(RETRIM_MAP)
    quiet = ("-q", "-M", "--cpass=0", "--no-trim", "-n")
    assert ddfs(*quiet, "-N", infile, tmp_path / "o1", new).returncode == 0
    assert blocks(new) == [
        "0x00000000  0x00000400  +",
        "0x00000400  0x00000200  *",
        "0x00000600  0x00000200  /",
        "0x00000800  0x00000200  *",
        "0x00000A00  0x00000200  ?",
        "0x00000C00  0x00000200  *",
        "0x00000E00  0x00000200  -",
        "0x00001000  0x00000200  *",
        "0x00001200  0x00000E00  +",
    ]
    assert ddfs(*quiet, "--schedule=ddrescue-1.27", infile, tmp_path / "o2", old).returncode == 0
    assert blocks(old) == [
        "0x00000000  0x00000400  +",
        "0x00000400  0x00000600  *",
        "0x00000A00  0x00000200  ?",
        "0x00000C00  0x00000600  *",
        "0x00001200  0x00000E00  +",
    ]


def test_continue_on_errno(tmp_path: Path) -> None:
    """A directory as input fails every read with EISDIR, which ends the run at once, with
    1.30's message (the input, the error and its number); ``--continue-on-errno=21`` makes it
    an ordinary read error, logged with its errno."""
    source = tmp_path / "dir"
    source.mkdir()
    res = ddfs("-s", "64Ki", source, tmp_path / "o", tmp_path / "m")
    assert res.returncode == 1
    assert res.stderr.endswith(
        f"ddfs: {source}: Fatal error reading the input file: Is a directory (errno=21)\n"
    )
    log = tmp_path / "reads.log"
    args = ("-q", "-s", "64Ki", f"--continue-on-errno=5,{errno.EISDIR}", f"--log-reads={log}")
    res = ddfs(*args, source, tmp_path / "o2", tmp_path / "m2")
    assert res.returncode == 0, res.stderr
    assert all(line.split()[2] in "*-" for line in blocks(tmp_path / "m2")[:1])
    reads = [line.split("\t") for line in log.read_text().splitlines() if line.startswith("0x")]
    assert reads and all(r[4] == "21" for r in reads)
    assert "  Errno" in log.read_text()
    for value in ("x", "0", "5,", ""):
        bad = ddfs("-q", f"--continue-on-errno={value}", source, tmp_path / "o3")
        assert bad.returncode == 1
        assert "Invalid errno value in option '--continue-on-errno'." in bad.stderr


def test_bad_sector_data(tmp_path: Path) -> None:
    """``--bad-sector-data=FILE``: an aligned sector equal to FILE's first sector is a read
    error (drives that return a fixed pattern for unreadable sectors); the same bytes at an
    unaligned offset are data."""
    pattern = b"BAD SECTOR DATA!" * 32
    data = bytearray(random.Random(7).randbytes(1 << 20))
    for sector in (100, 101, 1000, 2047):
        data[sector * 512 : (sector + 1) * 512] = pattern
    data[5000:5512] = pattern
    infile, pat = tmp_path / "in", tmp_path / "pat"
    infile.write_bytes(data)
    pat.write_bytes(pattern + b"tail ignored")
    expected = [
        "0x00000000  0x0000C800  +",
        "0x0000C800  0x00000400  -",
        "0x0000CC00  0x00070400  +",
        "0x0007D000  0x00000200  -",
        "0x0007D200  0x00082C00  +",
        "0x000FFE00  0x00000200  -",
    ]
    for schedule in ("ddfs", "ddrescue-1.27"):
        out, mp = tmp_path / f"{schedule}.out", tmp_path / f"{schedule}.map"
        res = ddfs("-q", f"--schedule={schedule}", f"--bad-sector-data={pat}", infile, out, mp)
        assert res.returncode == 0, res.stderr
        assert blocks(mp) == expected
        got = out.read_bytes()
        for sector in (100, 101, 1000, 2047):
            data[sector * 512 : (sector + 1) * 512] = bytes(512)
        assert got == bytes(data[: len(got)]) and len(got) == 2047 * 512  # last sector bad
    (tmp_path / "short").write_bytes(pattern[:100])
    for name, message in (
        ("absent", "Can't open bad-sector-data file for reading: No such file or directory"),
        ("short", "Error reading bad-sector-data file"),
    ):
        res = ddfs(f"--bad-sector-data={tmp_path / name}", infile, tmp_path / "x", tmp_path / "y")
        assert res.returncode == 1
        assert res.stderr == f"ddfs: {tmp_path / name}: {message}\n"


@pytest.mark.parametrize("schedule", ["ddfs", "ddrescue-1.27"])
def test_read_log_header(tmp_path: Path, random_file, schedule: str) -> None:
    """1.29 added the ``Errno`` column to the read log's header; 1.27's meanings keep 1.27's."""
    infile = random_file(1 << 16)
    log = tmp_path / "reads.log"
    res = ddfs("-q", f"--schedule={schedule}", f"--log-reads={log}", infile, tmp_path / "o")
    assert res.returncode == 0, res.stderr
    header = [line for line in log.read_text().splitlines() if "Ipos" in line]
    errno_title = "  Errno" if schedule == "ddfs" else ""
    assert header == [f"#  Ipos       Size  Copied_size  Error_size{errno_title}"]
