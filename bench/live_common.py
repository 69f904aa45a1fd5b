"""Shared pieces of the live-mount benchmark (``bench/live_mount.py``) and its parts.

The summary row (:class:`LiveRow`), the environment of the ``ddfs`` children, and small helpers
used by ``live_sequential``, ``live_ondemand`` and ``live_fsck``: CPU time from ``/proc``, a
percentile, a byte-for-byte comparison, polling, ``sfdisk`` and read-only loop devices.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import MiB, python_env

SECTOR = 512


@dataclass
class LiveRow:
    """One row of the live-mount summary: a figure through the mount against a reference."""

    benchmark: str
    metric: str
    reference: str
    mount: str
    ratio: str

    @staticmethod
    def headers() -> list[str]:
        return ["benchmark", "metric", "reference", "ddfs mount", "mount / reference"]

    def row(self) -> list[str]:
        return [self.benchmark, self.metric, self.reference, self.mount, self.ratio]


@contextmanager
def ddfs_environment() -> Iterator[None]:
    """Run the ``ddfs`` children started by the test helpers with byte-code caching.

    ``tests.simdisk`` and ``tests.mountproc`` start ``ddfs`` with this process's environment,
    so it is swapped for :func:`bench.common.python_env` meanwhile, then restored.
    """
    saved, wanted = dict(os.environ), python_env()
    os.environ.clear()
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (``statistics.quantiles``, exclusive method)."""
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def same_bytes(a: Path, b: Path, offset_b: int = 0, size: int | None = None) -> bool:
    """True if ``a`` (whole, or its first ``size`` bytes) equals ``b`` from ``offset_b``."""
    left = size if size is not None else os.path.getsize(a)
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        fb.seek(offset_b)
        while left:
            n = min(left, 4 * MiB)
            x, y = fa.read(n), fb.read(n)
            if x != y or len(x) != n:
                return False
            left -= n
    return True


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> None:
    """Poll ``predicate`` every ``step`` seconds; TimeoutError(``what``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


def make_gpt(path: Path, parts: str) -> None:
    """Write a GPT to ``path`` with ``sfdisk`` (``parts``: sfdisk's input after the label)."""
    subprocess.run(
        ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path)],
        input=f"label: gpt\n{parts}",
        text=True,
        check=True,
        capture_output=True,
    )


@contextmanager
def loop_at(path: str | Path, offset: int, size: int) -> Iterator[str]:
    """``path`` from ``offset`` (``size`` bytes) as a read-only loop device; detached in the end."""
    out = subprocess.run(
        ["losetup", "-r", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    dev = out.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False, timeout=30)
        backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
        deadline = time.monotonic() + 10
        while os.path.exists(backing) and time.monotonic() < deadline:
            time.sleep(0.02)  # the kernel lets go of the file lazily
