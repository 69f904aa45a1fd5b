"""``--command-mode``: commands on standard input drive the reads (issue 14). The session below
was run with GNU ddrescue 1.30 (built from tag v1.30) on the same input and test map: its
answers, final map and image were the same as those asserted here."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from tests.conftest import map_lines
from tests.oracle import DDFS

TEST_MAP = """\
0x00000000     +               1
0x00000000  0x00010000  +
0x00010000  0x00000800  -
0x00010800  0x00038000  +
"""

SESSION = (
    "c 0 70000\ns 0 0x20000\nc 0x10000 0x1000\ns 0x10000 0x1000\nc x\nbogus\nu\n"
    "c 200000 1000\ns 0 0x100000\n\n   s   0   0x100\nf\n"
)

ANSWERS = """\
done
0x00000000  0x00010000  +
0x00010000  0x00001170  -
0x00011170  0x0000EE90  ?
done
done
0x00010000  0x00001000  -
done
error
error: unknown command 'bogus'
done
done
0x00000000  0x00010000  +
0x00010000  0x00001170  -
0x00011170  0x0001FBD0  ?
0x00030D40  0x000003E8  +
0x00031128  0x000176D8  ?
done
0x00000000  0x00000100  +
done
done
"""


def run(*args: str | Path, stdin: str) -> subprocess.CompletedProcess[str]:
    cmd = [DDFS, "rescue", *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin)


def test_session_as_ddrescue_130(tmp_path: Path) -> None:
    data = random.Random(9).randbytes(300000)
    (tmp_path / "in").write_bytes(data)
    (tmp_path / "test.map").write_text(TEST_MAP)
    out, mp = tmp_path / "out", tmp_path / "map"
    res = run(
        "-q", "-H", tmp_path / "test.map", "--command-mode", tmp_path / "in", out, mp, stdin=SESSION
    )
    assert res.returncode == 1  # 'c x' and 'bogus' failed; the session went on
    assert res.stdout == ANSWERS
    assert map_lines(mp)[1:] == [
        "0x00000000  0x00010000  +",
        "0x00010000  0x00001170  -",
        "0x00011170  0x0001FBD0  ?",
        "0x00030D40  0x000003E8  +",
        "0x00031128  0x000176D8  ?",
    ]
    image = out.read_bytes()
    assert image[:0x10000] == data[:0x10000]
    assert image[0x30D40:0x31128] == data[0x30D40:0x31128]


def test_quit_keeps_the_map_and_end_of_input_finishes(tmp_path: Path, random_file) -> None:
    """``q`` ends without saving the map (it stays as created: all non-tried); end of input
    discards a partial line and saves, as ``f`` does."""
    infile = random_file(1 << 16)
    quit_map, eof_map = tmp_path / "q.map", tmp_path / "eof.map"
    res = run("-q", "--command-mode", infile, tmp_path / "o1", quit_map, stdin="c 0 4096\nq\n")
    assert (res.returncode, res.stdout) == (0, "done\n")
    assert map_lines(quit_map)[1:] == ["0x00000000  0x00010000  ?"]
    assert (tmp_path / "o1").read_bytes() == infile.read_bytes()[:4096]
    res = run("-q", "--command-mode", infile, tmp_path / "o2", eof_map, stdin="c 0 4096\nc 4096 4")
    assert (res.returncode, res.stdout) == (0, "done\ndone\n")
    assert map_lines(eof_map)[1:] == ["0x00000000  0x00001000  +", "0x00001000  0x0000F000  ?"]


def test_only_one_mode(tmp_path: Path, random_file) -> None:
    infile = random_file(4096)
    res = run("-q", "-G", "--command-mode", infile, tmp_path / "o", tmp_path / "m", stdin="")
    assert res.returncode == 1
    assert not (tmp_path / "o").exists()
    res = run("--command-mode", "-F", "?", infile, tmp_path / "o", tmp_path / "m", stdin="")
    assert res.returncode == 1
    assert "Only one operation can be specified." in res.stderr
