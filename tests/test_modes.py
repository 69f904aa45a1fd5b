"""GNU ddrescue 1.27 and ``ddfs rescue`` side by side: ``-m`` domains, fill mode, generate mode.

Each case runs both tools with the same arguments over the same files and asserts the same exit
status, the same final map (non-comment lines) and the same output bytes. The ``-m`` cases run
in test mode (``-H``) and also compare the read sequence; fill and generate mode read no input
map and no test map.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.oracle import (
    DDFS,
    DDRESCUE,
    SCHEDULE_127,
    MiB,
    Run,
    assert_same,
    content_lines,
    make_input,
    run_both,
    write_map,
    write_test_map,
)

SIZE = 2 * MiB
K = 0x1000

#: a hand-made starting map for fill mode, with unaligned block borders
FILL_BLOCKS = [
    (0, 0x10000, "+"),
    (0x10000, 0x20100, "-"),
    (0x30100, 0x1000, "?"),
    (0x31100, 0x300, "*"),
    (0x31400, 0x40000, "/"),
    (0x71400, 0x8EC00, "?"),
    (0x100000, 0x100000, "+"),
]


@pytest.fixture(scope="module")
def infile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_input(tmp_path_factory.mktemp("modes") / "in.img", SIZE, seed=7)


def run_mode(
    tool: str,
    workdir: Path,
    infile: Path,
    args: Sequence[str],
    *,
    premap: Path | None = None,
    preout: Path | None = None,
    mapfile: bool = True,
) -> Run:
    """Run one tool without test map or read log; ``premap``/``preout`` are copied in first."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, mp = workdir / f"{tool}.out", workdir / f"{tool}.map"
    for f in (out, mp, Path(f"{mp}.bak")):
        f.unlink(missing_ok=True)
    if premap is not None:
        shutil.copyfile(premap, mp)
    if preout is not None:
        shutil.copyfile(preout, out)
    files = [str(infile), str(out)] + ([str(mp)] if mapfile else [])
    assert DDRESCUE is not None
    cmd = [DDRESCUE, "-q"] if tool == "ddrescue" else [DDFS, "rescue", "-q", *SCHEDULE_127]
    proc = subprocess.run(
        [*cmd, *args, *files],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return Run(tool, out, mp, workdir / "none.log", proc.returncode, proc.stderr)


def mode_both(workdir: Path, infile: Path, args: Sequence[str], **kw: object) -> tuple[Run, Run]:
    ref = run_mode("ddrescue", workdir, infile, args, **kw)  # type: ignore[arg-type]
    got = run_mode("ddfs", workdir, infile, args, **kw)  # type: ignore[arg-type]
    return ref, got


def assert_refused(ref: Run, got: Run, code: int = 1) -> None:
    assert ref.returncode == code, ref.stderr
    assert got.returncode == code, got.stderr
    assert ref.mapfile.exists() == got.mapfile.exists()
    assert ref.outfile.exists() == got.outfile.exists()


# ---------------------------------------------------------------------------------- -m
def _domain_map(path: Path) -> Path:
    return write_map(
        path,
        "0 +",
        [
            (0, 0x10000, "+"),
            (0x10000, 0x20000, "-"),
            (0x30000, 0x50000, "+"),
            (0x80000, 0x1000, "?"),
            (0x81000, 0x12345, "+"),
            (0x93345, 0x100000, "*"),
            (0x193345, 0x20000, "+"),
        ],
    )


@pytest.mark.parametrize(
    "extra",
    [[], ["-i", "0x20000", "-s", "0x70000"], ["-R"], ["-i", "0x31000", "-o", "0"]],
    ids=["plain", "i-s", "reverse", "offset"],
)
def test_domain_map(tmp_path: Path, infile: Path, extra: list[str]) -> None:
    tmap = write_test_map(tmp_path / "test.map", SIZE, [(0x40000, 0x8000), (0x85000, 0x200)])
    dom = _domain_map(tmp_path / "dom.map")
    ref, got = run_both(tmp_path / "run", infile, ["-m", str(dom), *extra], test_map=tmap)
    assert ref.returncode == 0
    assert_same(ref, got)


def test_domain_map_loose(tmp_path: Path, infile: Path) -> None:
    """Unsorted blocks, gaps and a same-status overlap: exit 2 unless ``-L``."""
    tmap = write_test_map(tmp_path / "test.map", SIZE, [(0x50000, 0x10000)])
    dom = tmp_path / "loose.map"
    dom.write_text(
        "0 +\n0x90000 0x1000 +\n0x30000 0x50000 +\n0x0 0x10000 +\n"
        "0x80000 0x1000 ?\n0x100 0x200 +\n0x150000 0x30000 +\n"
    )
    ref, got = run_both(tmp_path / "loose", infile, ["-L", "-m", str(dom)], test_map=tmap)
    assert ref.returncode == 0
    assert_same(ref, got)
    ref, got = run_both(tmp_path / "strict", infile, ["-m", str(dom)], test_map=tmap)
    assert_refused(ref, got, 2)


def test_domain_map_refusals(tmp_path: Path, infile: Path) -> None:
    dom = _domain_map(tmp_path / "dom.map")
    ref, got = mode_both(tmp_path / "twice", infile, ["-m", str(dom), "-m", str(dom)])
    assert_refused(ref, got)
    ref, got = mode_both(tmp_path / "missing", infile, ["-m", str(tmp_path / "nope")])
    assert_refused(ref, got)


# ---------------------------------------------------------------------------------- -F
def _fill_files(tmp_path: Path, fill_size: int) -> tuple[Path, Path, Path]:
    fill = tmp_path / "fill.img"
    fill.write_bytes(bytes(random.Random(fill_size).randbytes(fill_size)))
    premap = write_map(tmp_path / "pre.map", "0x20000 ? 2", FILL_BLOCKS)
    preout = tmp_path / "pre.out"
    preout.write_bytes(b"z" * (SIZE - 0x12345))
    return fill, premap, preout


@pytest.mark.parametrize(
    "types", ["?", "-", "*/", "?*/-+", "+l", "?-l", "l?*/-", "/"], ids=lambda t: f"F{t}"
)
def test_fill(tmp_path: Path, types: str) -> None:
    fill, premap, preout = _fill_files(tmp_path, 800)
    ref, got = mode_both(tmp_path, fill, ["-F", types], premap=premap, preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)


@pytest.mark.parametrize(
    "extra",
    [
        ["-i", "0x20000", "-s", "0x60000", "-o", "0x5000"],
        ["-c", "7", "-b", "4096"],
        ["-m", "DOM"],
        ["-S"],
    ],
    ids=["offset", "cluster", "domain", "ignored"],
)
def test_fill_options(tmp_path: Path, extra: list[str]) -> None:
    fill, premap, preout = _fill_files(tmp_path, 0x30000)
    extra = [str(_domain_map(tmp_path / "dom.map")) if a == "DOM" else a for a in extra]
    ref, got = mode_both(tmp_path, fill, ["-F", "?-l", *extra], premap=premap, preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)


def test_fill_resume(tmp_path: Path) -> None:
    fill, _, preout = _fill_files(tmp_path, 3000)
    premap = write_map(tmp_path / "resume.map", "0x40000 F 3", FILL_BLOCKS)
    ref, got = mode_both(tmp_path, fill, ["-F", "-/l"], premap=premap, preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)


def test_fill_refusals(tmp_path: Path) -> None:
    fill, premap, _ = _fill_files(tmp_path, 800)
    ref, got = mode_both(tmp_path / "nomap", fill, ["-F", "?"], mapfile=False)
    assert_refused(ref, got)
    ref, got = mode_both(tmp_path / "missing", fill, ["-F", "?"])
    assert_refused(ref, got)
    for args in (["-F", "?x"], ["-F", "?", "-G"], ["-w"]):
        ref, got = mode_both(tmp_path / "bad", fill, args, premap=premap)
        assert_refused(ref, got)
        assert ref.map_lines == got.map_lines


@pytest.mark.parametrize("ignore", [[], ["-w"]], ids=["fatal", "w"])
def test_fill_write_errors(tmp_path: Path, ignore: list[str]) -> None:
    """Every write to /dev/full fails: exit 1, or with ``-w`` go on sector by sector."""
    fill, premap, _ = _fill_files(tmp_path, 800)
    runs = []
    for tool in ("ddrescue", "ddfs"):
        mp = tmp_path / f"{tool}.map"
        shutil.copyfile(premap, mp)
        cmd = [DDRESCUE, "-q"] if tool == "ddrescue" else [DDFS, "rescue", "-q", *SCHEDULE_127]
        args = [*cmd, "-f", *ignore, "-F", "?*", str(fill), "/dev/full", str(mp)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        runs.append((proc.returncode, content_lines(mp)))
    assert runs[0] == runs[1]
    assert runs[0][0] == (0 if ignore else 1)


# ---------------------------------------------------------------------------------- -G
def _partial_copy(path: Path, size: int, seed: int) -> Path:
    """An output with zero and non-zero sectors (non-zero ones hold a single byte)."""
    rng = random.Random(seed)
    data = bytearray(size)
    for pos in range(0, size, 512):
        if rng.random() < 0.4:
            data[pos + rng.randrange(512)] = rng.randrange(1, 256)
    data[0x40000:0x60000] = bytes(0x20000)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "outsize,extra",
    [
        (0x1E0000 + 100, []),
        (SIZE, []),
        (SIZE + 0x10000, ["-c", "5"]),
        (SIZE - 0x11111, ["-i", "0x30000", "-s", "0x100000"]),
        (SIZE, ["-b", "4096"]),
    ],
    ids=["short", "equal", "longer", "i-s", "b4096"],
)
def test_generate(tmp_path: Path, infile: Path, outsize: int, extra: list[str]) -> None:
    preout = _partial_copy(tmp_path / "pre.out", outsize, outsize)
    ref, got = mode_both(tmp_path, infile, ["-G", *extra], preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)


@pytest.mark.parametrize("status", ["0x9000 G 1", "0x120000 G 2", "0 G"])
def test_generate_resume(tmp_path: Path, infile: Path, status: str) -> None:
    preout = _partial_copy(tmp_path / "pre.out", SIZE - 0x3456, 3)
    blocks = [
        (0, 0x8000, "+"),
        (0x8000, 0x100, "?"),
        (0x8100, 0x3000, "-"),
        (0xB100, 0x100000, "?"),
    ]
    premap = write_map(tmp_path / "g.map", status, blocks)
    ref, got = mode_both(tmp_path, infile, ["-G"], premap=premap, preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)


def test_generate_refusals(tmp_path: Path, infile: Path) -> None:
    preout = _partial_copy(tmp_path / "pre.out", SIZE, 1)
    for blocks in ([(0, K, "?"), (K, K, "+")], [(0, K, "-")], [(0, K, "*"), (K, SIZE, "?")]):
        premap = write_map(tmp_path / "q.map", "0 ? 1", blocks)
        ref, got = mode_both(tmp_path / "exists", infile, ["-G"], premap=premap, preout=preout)
        assert_refused(ref, got)
        assert ref.map_lines == got.map_lines
    # a map of nothing but '?' (once cropped to the input) is blank: accepted
    for blocks in ([(0, K, "?")], [(0, SIZE, "?"), (SIZE, K, "-")]):
        premap = write_map(tmp_path / "q.map", "0x1000 * 3", blocks)
        ref, got = mode_both(tmp_path / "blank", infile, ["-G"], premap=premap, preout=preout)
        assert ref.returncode == 0
        assert_same(ref, got, compare_reads=False)
    ref, got = mode_both(tmp_path / "nomap", infile, ["-G"], preout=preout, mapfile=False)
    assert_refused(ref, got)
    ref, got = mode_both(tmp_path / "noout", infile, ["-G"])
    assert_refused(ref, got)
    empty = tmp_path / "empty.map"
    empty.write_text("")
    ref, got = mode_both(tmp_path / "empty", infile, ["-G"], premap=empty, preout=preout)
    assert ref.returncode == 0
    assert_same(ref, got, compare_reads=False)
