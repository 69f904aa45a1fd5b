"""Fault-injection helpers for the reliability tests (issue 7).

* :func:`tmpfs` mounts a size-limited tmpfs (a target disk that fills up) and always unmounts it.
* :func:`fingerprint` / :class:`Untouched` prove a file was not written: content hash, size,
  mtime and ctime before and after.
* :func:`check_map_claims` compares a map with the truth: every finished byte equals the original
  image in the output, and every bad-sector byte is really bad.
* :func:`ddrescuelog_accepts` runs GNU ``ddrescuelog -t`` on a mapfile.
* :func:`kill9` kills a process by its handle and, for ``ddfs mount``, clears the dead FUSE
  mount it leaves behind.

Every helper that changes system state (mounts, processes) undoes it in ``finally``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fsimages import merge
from tests.oracle import parse_map
from tests.simdisk import StrPath, abort_fuse, is_mounted

Range = tuple[int, int]  # (start, end)


# ------------------------------------------------------------------ a small filesystem
@contextmanager
def tmpfs(path: StrPath, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``mount -o size=``) on ``path``; unmount it on exit."""
    mnt = Path(path)
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mnt)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def resize_tmpfs(path: StrPath, size: str) -> None:
    """Grow (or shrink) a mounted tmpfs in place."""
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


# ------------------------------------------------------------------ nothing written
@dataclass(frozen=True)
class Fingerprint:
    """What changes when a file is written: its content, size, mtime and ctime."""

    sha256: str
    size: int
    mtime_ns: int
    ctime_ns: int


def sha256(path: StrPath, limit: int | None = None) -> str:
    """Hash of a file or device (the first ``limit`` bytes when given)."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as fh:
        while left is None or left > 0:
            chunk = fh.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h.hexdigest()


def fingerprint(path: StrPath) -> Fingerprint:
    st = os.stat(path)
    return Fingerprint(sha256(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Untouched:
    """Fingerprints of files taken now; :meth:`check` asserts none of them changed."""

    def __init__(self, *paths: StrPath) -> None:
        self.before = {os.fspath(p): fingerprint(p) for p in paths}

    def check(self) -> None:
        for path, fp in self.before.items():
            now = fingerprint(path)
            assert now == fp, f"{path} was changed: {fp} -> {now}"


def dir_listing(path: StrPath) -> dict[str, Fingerprint]:
    """Fingerprints of every regular file directly in ``path`` (to see that nothing appeared)."""
    out = {}
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if os.path.isfile(full) and not os.path.islink(full):
            out[entry] = fingerprint(full)
    return out


# ------------------------------------------------------------------ maps against the truth
def ranges_of(mapfile: StrPath, statuses: str) -> list[Range]:
    """The ``(start, end)`` ranges of the blocks with one of ``statuses``, merged."""
    _, blocks = parse_map(Path(mapfile))
    out: list[Range] = []
    for pos, size, st in blocks:
        if st in statuses:
            if out and out[-1][1] == pos:
                out[-1] = (out[-1][0], pos + size)
            else:
                out.append((pos, pos + size))
    return out


def intersects(a: Sequence[Range], pos: int, end: int) -> bool:
    return any(s < end and pos < e for s, e in a)


def inside(ranges: Sequence[Range], pos: int, end: int) -> bool:
    """``[pos, end)`` is wholly covered by the merged ``ranges``."""
    return any(s <= pos and end <= e for s, e in ranges)


def check_map_claims(
    mapfile: StrPath, outfile: StrPath, image: bytes, bad: Sequence[Range]
) -> tuple[int, int]:
    """Assert the map claims only the truth; return (finished bytes, bad-sector bytes).

    * every ``+`` byte of the map equals ``image`` at the same place of ``outfile``;
    * every ``-`` byte lies in one of the truly ``bad`` ranges.
    """
    finished = ranges_of(mapfile, "+")
    done = 0
    if finished:
        with open(outfile, "rb") as fh:
            for a, b in finished:
                fh.seek(a)
                got = fh.read(b - a)
                if got != image[a:b]:
                    where = next(
                        (
                            a + i
                            for i, (x, y) in enumerate(zip(got, image[a:b], strict=False))
                            if x != y
                        ),
                        a + len(got),
                    )
                    raise AssertionError(
                        f"{mapfile}: finished block [{a:#x}, {b:#x}) differs from the image "
                        f"in {outfile} at {where:#x} (output has {len(got)} of {b - a} bytes)"
                    )
                done += b - a
    truth = merge(bad)
    marked = ranges_of(mapfile, "-")
    for a, b in marked:
        assert inside(truth, a, b), f"{mapfile}: [{a:#x}, {b:#x}) marked bad but it reads fine"
    return done, sum(b - a for a, b in marked)


def ddrescuelog_accepts(mapfile: StrPath) -> subprocess.CompletedProcess[str]:
    """``ddrescuelog -t MAPFILE`` (GNU ddrescuelog 1.27 must be installed)."""
    exe = shutil.which("ddrescuelog")
    assert exe, "ddrescuelog (package gddrescue) must be installed: run `make test`"
    return subprocess.run([exe, "-t", os.fspath(mapfile)], capture_output=True, text=True)


# ------------------------------------------------------------------ processes
def kill9(proc: subprocess.Popen[bytes], mountpoint: StrPath | None = None) -> None:
    """SIGKILL a process by its handle and reap it; clear the dead FUSE mount it leaves."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)
    if mountpoint is not None and is_mounted(mountpoint):
        abort_fuse(mountpoint)
        deadline = time.monotonic() + 10
        while is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not is_mounted(mountpoint), f"dead mount left on {mountpoint}"


def leftover_processes(*needles: str) -> list[str]:
    """Command lines of live processes containing every one of ``needles`` (for assertions)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd and all(n in cmd for n in needles):
            found.append(f"{pid}: {cmd}")
    return found
