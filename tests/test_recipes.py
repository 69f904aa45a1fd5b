"""The recipes of old ddrescue manuals, verbatim, with ``ddfs rescue`` (issue 5).

Loop devices stand in for ``/dev/hda1`` and friends: a read-only loop device on a ``ddfs
simulate`` failing disk for a source, a writable loop device on a file for a destination disk.
Each recipe is compared with GNU ddrescue 1.27 run with the 1.27 spelling (it rejects the old
long names): same final map (non-comment lines) and same output bytes.

The bad areas are 128 KiB aligned, so the granularity of buffered reads through the loop device
(page cache folios, seen to vary between 4 and 16 KiB from one run to the next) does not change
where the reads fail.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import map_lines, run_ddfs, run_ddrescue
from tests.oracle import SCHEDULE_127
from tests.simdisk import loop_device, simulated_disk
from tests.test_mount import write_testmap

pytestmark = [
    pytest.mark.fuse,
]

SIZE = 2 << 20
BAD = [(0x40000, 0x20000), (0x100000, 0x40000), (0x1C0000, 0x20000)]
PLAN = ["--no-metadata-first"]  # random data is not planned anyway: plain ddrescue order


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(image, simulated failing disk serving it)."""
    tmp = tmp_path_factory.mktemp("recipes")
    image = tmp / "disk.img"
    image.write_bytes(random.Random(5).randbytes(SIZE))
    write_testmap(tmp / "bad.map", SIZE, BAD)
    (tmp / "sim").mkdir()
    with simulated_disk(image, tmp / "sim", tmp / "bad.map") as disk:
        yield image, disk


@contextmanager
def blank_disk(path: Path) -> Iterator[str]:
    """A writable loop device on a zeroed file of SIZE bytes (a destination disk)."""
    path.write_bytes(bytes(SIZE))
    with loop_device(path, read_only=False) as dev:
        yield dev


def read_dev(dev: str) -> bytes:
    with open(dev, "rb") as fh:
        return fh.read()


def both(tmp: Path, old: list[str], new: list[str], src: str, out1: str, out2: str) -> None:
    """``ddfs rescue OLD src out2 tmp/m2`` and ``ddrescue NEW src out1 tmp/m1``: same results.

    A device source starts each run with an empty page cache and no readahead, so the second
    tool meets the same failing disk as the first (cached good pages would change which reads
    fail, and where)."""
    fresh_cache(src)
    a = run_ddrescue("-q", *new, src, out1, str(tmp / "m1"), timeout=120)
    fresh_cache(src)
    b = run_ddfs(
        "rescue", "-q", *SCHEDULE_127, *PLAN, *old, src, out2, str(tmp / "m2"), timeout=120
    )
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert map_lines(tmp / "m1") == map_lines(tmp / "m2")
    data1 = read_dev(out1) if out1.startswith("/dev/") else Path(out1).read_bytes()
    data2 = read_dev(out2) if out2.startswith("/dev/") else Path(out2).read_bytes()
    assert data1 == data2


def fresh_cache(src: str) -> None:
    if src.startswith("/dev/"):
        subprocess.run(["blockdev", "--setra", "0", "--flushbufs", src], check=True)


def bad_areas(mapfile: Path) -> list[tuple[int, int]]:
    out = []
    for line in map_lines(mapfile)[1:]:
        pos, size, st = line.split()
        if st != "+":
            out.append((int(pos, 0), int(size, 0)))
    return out


def first_pass_map(tmp: Path, src: str) -> None:
    """Give both tools the same start: the map and image of ``ddrescue -n``."""
    r = run_ddrescue("-q", "-n", src, str(tmp / "i0"), str(tmp / "m0"))
    assert r.returncode == 0, r.stderr
    for n in ("1", "2"):
        shutil.copy(tmp / "m0", tmp / f"m{n}")
        shutil.copy(tmp / "i0", tmp / f"i{n}")


def test_no_split_quick_first_pass(tmp_path: Path, failing: tuple[Path, str]) -> None:
    # ddrescue --no-split /dev/hda1 imagefile logfile
    with loop_device(failing[1]) as hda1:
        r = run_ddfs("rescue", "--no-split", hda1, str(tmp_path / "x"), str(tmp_path / "xm"))
        assert r.returncode == 0
        assert r.stderr.count("ddfs: option '--no-split' is now '--no-scrape' (-n)") == 1
        both(tmp_path, ["--no-split"], ["-n"], hda1, str(tmp_path / "i1"), str(tmp_path / "i2"))
    # trimmed, not scraped: each bad area is left as "-" edges around a "/" middle (the
    # buffered reads may fail a little more than the bad areas near the end of the device)
    blocks = [line.split() for line in map_lines(tmp_path / "m2")[1:]]
    for pos, _ in BAD:
        i = next(i for i, b in enumerate(blocks) if int(b[0], 0) == pos)
        assert [b[2] for b in blocks[i : i + 3]] == ["-", "/", "-"]


def test_direct_max_retries(tmp_path: Path, failing: tuple[Path, str]) -> None:
    # ddrescue --direct --max-retries=3 /dev/hda1 imagefile logfile
    with loop_device(failing[1]) as hda1:
        both(
            tmp_path,
            ["--direct", "--max-retries=3"],
            ["-d", "-r3"],
            hda1,
            str(tmp_path / "i1"),
            str(tmp_path / "i2"),
        )
    assert bad_areas(tmp_path / "m2") == BAD


def test_direct_retrim_max_retries(tmp_path: Path, failing: tuple[Path, str]) -> None:
    # ddrescue --direct --retrim --max-retries=3 /dev/hda1 imagefile logfile (after a pass)
    with loop_device(failing[1]) as hda1:
        first_pass_map(tmp_path, hda1)
        old = ["--direct", "--retrim", "--max-retries=3"]
        both(tmp_path, old, ["-d", "--retrim", "-r3"], hda1, *outs(tmp_path))
    assert bad_areas(tmp_path / "m2") == BAD


def outs(tmp: Path) -> tuple[str, str]:
    return str(tmp / "i1"), str(tmp / "i2")


def test_max_retries_complete_only(tmp_path: Path, failing: tuple[Path, str]) -> None:
    # ddrescue --max-retries=3 --complete-only /dev/raw/raw1 imagefile logfile
    with loop_device(failing[1]) as raw1:
        # a map of the first MiB only: -C must not read beyond it
        (tmp_path / "m1").write_text("0x00000000 ? 1\n0x00000000 0x00100000 ?\n")
        shutil.copy(tmp_path / "m1", tmp_path / "m2")
        old = ["--max-retries=3", "--complete-only"]
        both(tmp_path, old, ["-r3", "--complete-only"], raw1, *outs(tmp_path))
    blocks = [line.split() for line in map_lines(tmp_path / "m2")[1:]]
    assert sum(int(size, 0) for _, size, _ in blocks) == 1 << 20
    assert bad_areas(tmp_path / "m2") == BAD[:1]


@pytest.mark.parametrize(
    ("recipe", "new"),
    [(["-r3"], ["-r3"]), (["-n"], ["-n"]), (["-r", "1"], ["-r", "1"])],
    ids=["r3-hda2-hdb2", "n-sda-sdb", "r1-sda-sdb"],
)
def test_disk_to_disk(
    tmp_path: Path, failing: tuple[Path, str], recipe: list[str], new: list[str]
) -> None:
    # ddrescue -r3 /dev/hda2 /dev/hdb2 logfile
    # ddrescue -n /dev/sda /dev/sdb rescue.log
    # ddrescue -r 1 /dev/sda /dev/sdb rescue.log
    with (
        loop_device(failing[1]) as sda,
        blank_disk(tmp_path / "d1") as sdb1,
        blank_disk(tmp_path / "d2") as sdb2,
    ):
        log = str(tmp_path / "rescue.log")
        a = run_ddrescue(*new, sda, sdb1, log)
        b = run_ddfs("rescue", *recipe, sda, sdb2, log)
        # writing over a device needs -f, in 1.27 and in ddfs; ddfs names the command to use
        assert a.returncode == b.returncode == 1
        assert "Output file exists and is not a regular file" in b.stderr
        assert f"ddfs rescue -f {' '.join(recipe)} {sda} {sdb2} {log}" in b.stderr
        assert not Path(log).exists()
        both(tmp_path, ["-f", *recipe], ["-f", *new], sda, sdb1, sdb2)
        assert read_dev(sdb2)[:0x40000] == failing[0].read_bytes()[:0x40000]


def test_cdrom_block_size(tmp_path: Path) -> None:
    # ddrescue -b 2048 /dev/cdrom cdimage logfile   (a file in test mode for the CD)
    cdrom = tmp_path / "cdrom"
    cdrom.write_bytes(random.Random(7).randbytes(SIZE))
    write_testmap(tmp_path / "bad.map", SIZE, [(0x800, 0x800), (0x10000, 0x1800)])
    test = ["-H", str(tmp_path / "bad.map")]
    both(tmp_path, ["-b", "2048", *test], ["-b", "2048", *test], str(cdrom), *outs(tmp_path))
    r = run_ddfs(
        "rescue", *SCHEDULE_127, "--block-size=2048", *test, str(cdrom), "cd2", "cm2", cwd=tmp_path
    )
    assert r.returncode == 0 and "'--sector-size' (-b)" in r.stderr
    assert map_lines(tmp_path / "cm2") == map_lines(tmp_path / "m2")


def test_old_names_need_the_new_spelling_in_ddrescue(tmp_path: Path) -> None:
    """GNU ddrescue 1.27 rejects the old names (hence the 1.27 spelling in the comparisons)."""
    src = tmp_path / "src"
    src.write_bytes(bytes(4096))
    for old in ("--no-split", "--max-retries=3", "--direct", "--block-size=512"):
        r = run_ddrescue(old, str(src), str(tmp_path / "o"), str(tmp_path / "m"))
        assert r.returncode == 1 and "unrecognized option" in r.stderr


def test_old_option_rewriting() -> None:
    from ddfs.commands.cli import rescue
    from ddfs.commands.common import rewrite_old_options

    args, notes = rewrite_old_options(
        rescue, ["--max-retries", "3", "-H", "--direct", "--direct", "--block-size=2048", "x"]
    )
    assert args == ["-r", "3", "-H", "--direct", "-d", "-b2048", "x"]
    assert notes == [
        "option '--max-retries' is now '--retry-passes' (-r)",
        "option '--direct' is now '--idirect' (-d)",
        "option '--block-size' is now '--sector-size' (-b)",
    ]
    assert rewrite_old_options(rescue, ["--", "--direct"])[0] == ["--", "--direct"]
    for cmd in ("rescue", "mount"):
        text = run_ddfs(cmd, "--help").stdout
        for old in ("--no-split", "--max-retries", "--direct", "--block-size", "--max-errors"):
            assert old in text
        assert "--generate-logfile" in text
