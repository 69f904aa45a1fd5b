"""Shared helpers of the benchmarks: tool paths, measured subprocess runs, tables, scratch space.

Every measurement runs the tool as a child process and reads the child's own resource usage
with :func:`os.wait4`, so ddfs and GNU ddrescue are measured the same way: wall time from
``time.perf_counter`` around the child's whole life (start-up included), user and system CPU
time, and the maximum resident set size (the ``%M`` of ``/usr/bin/time``).

Scratch files go to ``$DDFS_BENCH_DIR`` (default ``/dev/shm/ddfs-bench``), never into the
repository; each benchmark removes what it created.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

REPO = Path(__file__).resolve().parent.parent
DDFS = str(Path(sys.executable).with_name("ddfs"))
DDRESCUE = shutil.which("ddrescue") or "ddrescue"
DDRESCUELOG = shutil.which("ddrescuelog") or "ddrescuelog"
TIME = "/usr/bin/time"  # GNU time (Debian package ``time``)
SCRATCH = Path(os.environ.get("DDFS_BENCH_DIR", "/dev/shm/ddfs-bench"))

if str(REPO) not in sys.path:  # so ``python bench/x.py`` can import ``bench.common``
    sys.path.insert(0, str(REPO))


@dataclass
class Run:
    """One measured child process."""

    wall: float  # seconds
    user: float  # seconds of user CPU
    sys: float  # seconds of system CPU
    maxrss_kb: int  # peak resident set size, KiB
    returncode: int
    stdout: str = ""
    stderr: str = ""


def run_measured(
    cmd: Sequence[str],
    cwd: str | Path | None = None,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
    env: dict[str, str] | None = None,
    stdout_path: str | Path | None = None,
) -> Run:
    """Run ``cmd`` to completion under ``/usr/bin/time``; return its wall time and rusage.

    The child is started by ``/usr/bin/time`` (a small process), because a child forked from
    this (large) Python process would report the parent's memory as its peak RSS: Linux
    carries the RSS high-water mark over ``exec``. Wall time is ``time.perf_counter`` around
    the whole run; user and system CPU come from :func:`os.wait4` (they include the tiny
    ``time`` process itself); the peak RSS is ``time``'s ``%M`` of the command alone.
    With ``stdout_path`` the command's standard output goes to that file (not read back).

    Raises:
        RuntimeError: the exit status is not in ``ok_codes`` (with ``check``).
    """
    with (
        open(stdout_path, "w+b") if stdout_path else tempfile.TemporaryFile() as out_f,
        tempfile.TemporaryFile() as err_f,
        tempfile.NamedTemporaryFile(mode="r", prefix="ddfs-bench-time-") as rss_f,
    ):
        argv = [TIME, "-q", "-f", "%M", "-o", rss_f.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out_f, stderr=err_f, env=env)
        # reap with wait4 (not Popen.wait) to get the child's resource usage
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out = "" if stdout_path else out_f.read().decode(errors="replace")
        err = err_f.read().decode(errors="replace")
        rss_text = rss_f.read().split()
    maxrss = int(rss_text[-1]) if rss_text and rss_text[-1].isdigit() else -1
    run = Run(wall, usage.ru_utime, usage.ru_stime, maxrss, proc.returncode, out, err)
    if check and run.returncode not in ok_codes:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {run.returncode}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        )
    return run


def python_env() -> dict[str, str]:
    """The environment for ddfs runs: byte-code caching on, as in a normal installation.

    The sandbox sets ``PYTHONDONTWRITEBYTECODE``, and the editable install has no ``.pyc``
    files, so every ddfs start would compile its modules again (about 20 ms). The caches go
    to ``SCRATCH/pycache`` (``PYTHONPYCACHEPREFIX``), not into the repository; the first
    (uncounted) warm-up run fills them.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(SCRATCH / "pycache")
    return env


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def parse_size(text: str) -> int:
    """``1Gi``, ``64Mi``, ``500k``, ``123``: a size with an optional (binary) suffix."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * mult)
    return int(text)


def mib_per_s(size: int, seconds: float) -> float:
    return size / MiB / seconds if seconds > 0 else float("inf")


def ratio(ddfs: float, ddrescue: float) -> float:
    """ddfs / ddrescue (below 1: ddfs is faster or smaller)."""
    return ddfs / ddrescue if ddrescue else float("inf")


def map_lines(path: str | Path) -> tuple[str, list[str]]:
    """A mapfile as (status line, block lines), comments and blank lines dropped."""
    status = ""
    blocks: list[str] = []
    with open(path, encoding="latin-1") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not status:
                status = " ".join(line.split())
            else:
                blocks.append(" ".join(line.split()))
    return status, blocks


def tool_versions() -> dict[str, str]:
    """First line of ``--version`` of each tool, plus Python's and the kernel's."""

    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        except OSError:
            return "missing"
        return out.splitlines()[0] if out else "?"

    return {
        "ddrescue": first_line([DDRESCUE, "--version"]),
        "ddfs": first_line([DDFS, "--version"]),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (columns padded so it also reads well on a terminal)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


@contextmanager
def scratch_dir(name: str, keep: bool = False) -> Iterator[Path]:
    """A fresh ``SCRATCH/name`` directory, removed afterwards unless ``keep``."""
    path = SCRATCH / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def write_random(path: Path, size: int, seed: int = 1) -> None:
    """``size`` reproducible pseudo-random bytes (fast: numpy-free ``random.randbytes``)."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MiB)
            fh.write(rng.randbytes(n))
            left -= n


def remove_scratch() -> None:
    """Remove the whole scratch directory (the byte-code caches included)."""
    shutil.rmtree(SCRATCH, ignore_errors=True)


@dataclass
class Summary:
    """One row of the summary table printed by ``run_all``."""

    benchmark: str
    metric: str
    ddrescue: str
    ddfs: str
    ratio: str

    @staticmethod
    def headers() -> list[str]:
        return ["benchmark", "metric", "GNU ddrescue", "ddfs", "ddfs / ddrescue"]

    def row(self) -> list[str]:
        return [self.benchmark, self.metric, self.ddrescue, self.ddfs, self.ratio]
