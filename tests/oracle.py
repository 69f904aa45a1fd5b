"""Helpers for the oracle tests: GNU ddrescue 1.27 and ``ddfs rescue`` run side by side.

Both tools run in test mode (``-H TESTMAP``): only the ``+`` blocks of the test map are
readable, so every bad-area layout is deterministic and the read sequence (``--log-reads``)
can be compared line for line, together with the final mapfile, the output bytes and the
exit status.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

DDRESCUE = shutil.which("ddrescue")
DDRESCUELOG = shutil.which("ddrescuelog")
#: the ddfs executable (``DDFS_BIN`` overrides it, e.g. to try a patched tree)
DDFS = os.environ.get("DDFS_BIN") or str(Path(sys.executable).with_name("ddfs"))

MiB = 1 << 20
KiB = 1 << 10

Area = tuple[int, int]  # (pos, size)

SCHEDULE_127 = ["--schedule=ddrescue-1.27"]


def have_ddrescue() -> bool:
    """True when GNU ddrescue 1.27 and ddrescuelog are on PATH."""
    if DDRESCUE is None or DDRESCUELOG is None:
        return False
    out = subprocess.run([DDRESCUE, "--version"], capture_output=True, text=True).stdout
    return "1.27" in out.splitlines()[0] if out else False


# ---------------------------------------------------------------------------------- inputs
def make_input(path: Path, size: int, seed: int = 1) -> Path:
    """Write ``size`` pseudo-random bytes (reproducible from ``seed``) to ``path``."""
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MiB)
            fh.write(rng.randbytes(n))
            left -= n
    return path


def scattered_areas(
    size: int, count: int, seed: int, sector: int = 512, max_sectors: int = 2, multi: float = 0.03
) -> list[Area]:
    """``count`` disjoint, non-adjacent, sector-aligned bad areas: one sector each, or with
    probability ``multi`` 2..``max_sectors`` sectors (case B of the spec: ~205 sectors in 199
    areas)."""
    rng = random.Random(seed)
    nsectors = size // sector
    taken: set[int] = set()
    areas: list[Area] = []
    while len(areas) < count:
        n = rng.randint(2, max_sectors) if max_sectors > 1 and rng.random() < multi else 1
        first = rng.randrange(1, nsectors - n - 1)
        span = range(first - 1, first + n + 1)
        if any(s in taken for s in span):
            continue
        taken.update(span)
        areas.append((first * sector, n * sector))
    return sorted(areas)


def write_test_map(path: Path, size: int, bad: Iterable[Area]) -> Path:
    """A ddrescue test map: ``+`` over ``[0, size)`` except ``-`` blocks over ``bad``."""
    lines = ["0x00000000     +               1"]
    pos = 0
    for start, length in sorted(bad):
        if start > pos:
            lines.append(f"0x{pos:08X}  0x{start - pos:08X}  +")
        lines.append(f"0x{start:08X}  0x{length:08X}  -")
        pos = start + length
    if pos < size:
        lines.append(f"0x{pos:08X}  0x{size - pos:08X}  +")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_map(path: Path, status: str, blocks: Sequence[tuple[int, int, str]]) -> Path:
    """A mapfile with the status line ``status`` (e.g. ``"0x400 ? 1"``) and ``blocks``."""
    body = "".join(f"0x{p:08X}  0x{s:08X}  {c}\n" for p, s, c in blocks)
    path.write_text(f"# written by tests/oracle.py\n{status}\n{body}")
    return path


# ---------------------------------------------------------------------------------- parsing
def content_lines(path: Path) -> list[str]:
    """The non-comment, non-blank lines, each with its fields joined by single spaces."""
    out = []
    for line in Path(path).read_text().splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            out.append(" ".join(text.split()))
    return out


def parse_map(path: Path) -> tuple[tuple[int, str, int], list[tuple[int, int, str]]]:
    """``((current_pos, status, pass), [(pos, size, status), ...])`` of a mapfile."""
    lines = content_lines(path)
    f = lines[0].split()
    status = (int(f[0], 0), f[1], int(f[2]) if len(f) > 2 else 1)
    blocks = []
    for line in lines[1:]:
        p, s, c = line.split()[:3]
        blocks.append((int(p, 0), int(s, 0), c))
    return status, blocks


def read_log(path: Path) -> list[str]:
    """The read lines of a ``--log-reads`` file (``0x%08X\\t%d\\t%d\\t%d``), in order."""
    return [
        line
        for line in Path(path).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def log_phases(path: Path) -> list[str]:
    """The phase headers of a ``--log-reads`` file, without their time stamps."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("# ") and "  " in line[2:]:
            msg = line[2:].split("  ", 1)[1].strip()
            if msg.startswith(("Copying", "Trimming", "Scraping", "Retrying")):
                out.append(msg)
    return out


def ddrescuelog_t(path: Path) -> subprocess.CompletedProcess[str]:
    """``ddrescuelog -t MAP`` (it must accept every mapfile either tool writes)."""
    assert DDRESCUELOG is not None
    return subprocess.run([DDRESCUELOG, "-t", str(path)], capture_output=True, text=True)


# ---------------------------------------------------------------------------------- running
@dataclass
class Run:
    """One tool's run: its files and its exit status."""

    tool: str
    outfile: Path
    mapfile: Path
    logfile: Path
    returncode: int
    stderr: str

    @property
    def map_lines(self) -> list[str]:
        return content_lines(self.mapfile)

    @property
    def reads(self) -> list[str]:
        return read_log(self.logfile) if self.logfile.exists() else []

    @property
    def output(self) -> bytes:
        return self.outfile.read_bytes() if self.outfile.exists() else b""


def command(
    tool: str, infile: Path, outfile: Path, mapfile: Path, args: Sequence[str]
) -> list[str]:
    """The command line of ``tool`` (``"ddrescue"`` or ``"ddfs"``) for one run."""
    if tool == "ddrescue":
        assert DDRESCUE is not None
        return [DDRESCUE, "-q", *args, str(infile), str(outfile), str(mapfile)]
    # the oracle comparisons run ddrescue 1.27's schedule (ddfs's default reads another way)
    return [DDFS, "rescue", "-q", *SCHEDULE_127, *args, str(infile), str(outfile), str(mapfile)]


def run_tool(
    tool: str,
    workdir: Path,
    infile: Path,
    args: Sequence[str] = (),
    *,
    test_map: Path | None = None,
    premap: Path | None = None,
    preout: Path | None = None,
    tag: str = "",
    timeout: float = 120,
) -> Run:
    """Run one tool in test mode; ``premap``/``preout`` are copied in first (a resume).

    Files are ``workdir/<tool><tag>.{out,map,log}``.
    """
    name = f"{tool}{tag}"
    outfile, mapfile, logfile = (workdir / f"{name}.{ext}" for ext in ("out", "map", "log"))
    for f in (outfile, mapfile, logfile, Path(f"{mapfile}.bak")):
        f.unlink(missing_ok=True)
    if premap is not None:
        shutil.copyfile(premap, mapfile)
    if preout is not None:
        shutil.copyfile(preout, outfile)
    full = list(args)
    if test_map is not None:
        full = ["-H", str(test_map), *full]
    full.append(f"--log-reads={logfile}")
    proc = subprocess.run(
        command(tool, infile, outfile, mapfile, full),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Run(tool, outfile, mapfile, logfile, proc.returncode, proc.stderr)


def run_both(
    workdir: Path, infile: Path, args: Sequence[str] = (), **kw: object
) -> tuple[Run, Run]:
    """Run ddrescue and ddfs with the same arguments; returns ``(ddrescue, ddfs)``."""
    workdir.mkdir(parents=True, exist_ok=True)
    ref = run_tool("ddrescue", workdir, infile, args, **kw)  # type: ignore[arg-type]
    got = run_tool("ddfs", workdir, infile, args, **kw)  # type: ignore[arg-type]
    return ref, got


def first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    """A short description of where two line lists first differ (for assertion messages)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            lo = max(0, i - 2)
            ctx_a, ctx_b = list(a[lo : i + 3]), list(b[lo : i + 3])
            return (
                f"first difference at line {i}: ddrescue {x!r} ddfs {y!r}\n"
                f"  ddrescue context: {ctx_a}\n  ddfs context:     {ctx_b}"
            )
    if len(a) != len(b):
        return f"lengths differ: ddrescue {len(a)} ddfs {len(b)}"
    return "no difference"


def assert_same(ref: Run, got: Run, *, compare_reads: bool = True) -> None:
    """Same exit status, final map, read sequence and output bytes."""
    assert got.returncode == ref.returncode, (
        f"exit status: ddrescue {ref.returncode} ddfs {got.returncode}\n"
        f"ddrescue stderr: {ref.stderr}\nddfs stderr: {got.stderr}"
    )
    if compare_reads:
        ra, rb = ref.reads, got.reads
        assert ra == rb, "read sequence: " + first_difference(ra, rb)
    ma, mb = ref.map_lines, got.map_lines
    assert ma == mb, "mapfile: " + first_difference(ma, mb)
    assert files_equal(ref.outfile, got.outfile), "output files differ"
    if got.mapfile.exists():
        check = ddrescuelog_t(got.mapfile)
        assert check.returncode == 0, f"ddrescuelog -t rejects ddfs's map: {check.stderr}"


def files_equal(a: Path, b: Path) -> bool:
    """``cmp``: both missing, or the same bytes."""
    if not a.exists() or not b.exists():
        return a.exists() == b.exists()
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


# ---------------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    """A seeded random case: bad areas of the test map, an optional starting map, options."""

    seed: int
    bad: list[Area]
    args: list[str]
    premap_status: str | None = None
    premap_blocks: list[tuple[int, int, str]] | None = None


def _merge(areas: list[Area]) -> list[Area]:
    out: list[Area] = []
    for p, n in sorted(areas):
        if out and p <= out[-1][0] + out[-1][1]:
            q, m = out[-1]
            out[-1] = (q, max(m, p + n - q))
        else:
            out.append((p, n))
    return out


def random_blocks(
    rng: random.Random, size: int, statuses: str, count: int, align: int
) -> list[tuple[int, int, str]]:
    """Up to ``count`` + 1 consecutive blocks of random statuses covering ``[0, size)``."""
    cuts = sorted({rng.randrange(1, size // align) * align for _ in range(count)})
    points = [0, *cuts, size]
    out: list[tuple[int, int, str]] = []
    for a, b in pairwise(points):
        st = rng.choice(statuses)
        if out and out[-1][2] == st:
            out[-1] = (out[-1][0], out[-1][1] + b - a, st)
        else:
            out.append((a, b - a, st))
    return out


def random_scenario(
    seed: int, size: int, options: Sequence[str], unaligned: bool = False
) -> Scenario:
    """A reproducible random case over an input of ``size`` bytes.

    The test map has up to 40 bad areas of one sector to ~300 KB; in 60 % of the cases a
    starting map of up to 60 random blocks and a random status line is given too (a resume).
    ``-b 4096`` options get 4096-aligned maps; ``unaligned`` makes some maps byte-aligned.
    """
    rng = random.Random(seed)
    args = rng.choice(list(options)).split()
    align = 4096 if "4096" in args else 512
    if unaligned and align == 512:
        align = rng.choice([512, 8, 1])
    bad = []
    for _ in range(rng.randint(1, 40)):
        n = rng.choice([512, 512, 1024, 4096, 65536, 102400, 299520])
        n = -(-n // align) * align
        p = rng.randrange(0, size - n) // align * align
        bad.append((p, n))
    bad = [(p, min(n, size - align - p)) for p, n in _merge(bad) if p < size - align]
    sc = Scenario(seed, bad, args)
    if rng.random() < 0.6:
        sc.premap_blocks = random_blocks(rng, size, "?*/-+", rng.randint(1, 60), align)
        st = rng.choice("?*/-+")
        passno = rng.randint(1, 5) if st == "?" else rng.randint(1, 4) if st == "-" else 1
        sc.premap_status = f"0x{rng.randrange(0, size // align) * align:X} {st} {passno}"
    return sc


def run_scenario(workdir: Path, infile: Path, size: int, sc: Scenario) -> tuple[Run, Run]:
    """Write the scenario's test map (and starting map) under ``workdir`` and run both tools."""
    workdir.mkdir(parents=True, exist_ok=True)
    test_map = write_test_map(workdir / "test.map", size, sc.bad)
    premap = None
    if sc.premap_blocks is not None and sc.premap_status is not None:
        premap = write_map(workdir / "start.map", sc.premap_status, sc.premap_blocks)
    return run_both(workdir, infile, sc.args, test_map=test_map, premap=premap)
