"""Run every benchmark (ddfs against GNU ddrescue, side by side) and print a summary table.

1. ``clean_copy``: a 1 GiB clean copy on tmpfs, interleaved rounds;
2. ``mapfile_io``: loading and saving a 1,000,000-line mapfile (1 TB and < 4 GiB disks);
3. ``simulated_disk``: rescuing a ``ddfs simulate`` failing disk (needs FUSE; skipped with a
   note when ``/dev/fuse`` or ``fusermount3`` is missing).
4. ``live_mount``: ``ddfs mount`` against reading without it: sequential reads of finished data,
   the latency of on-demand reads, ``e2fsck`` of a partition during the rescue (needs FUSE and
   root for the loop device; printed as a second summary, with its own references).

Run: ``make bench`` or ``.venv/bin/python bench/run_all.py [--rounds N] [--skip NAME ...]``.
Scratch files live in ``$DDFS_BENCH_DIR`` (default ``/dev/shm/ddfs-bench``) and are removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import clean_copy, live_mount, mapfile_io, simulated_disk
from bench.common import REPO, Summary, print_table, remove_scratch, tool_versions

BENCHMARKS = ("clean_copy", "mapfile_io", "simulated_disk", "live_mount")


def git_version() -> str:
    """``git describe --always --dirty`` of the repository, or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def have_fuse() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds of benchmarks 1, 2 and 4 [5]")
    ap.add_argument("--skip", nargs="*", default=[], choices=BENCHMARKS, help="leave out")
    args = ap.parse_args(argv)

    info = tool_versions()
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"ddfs benchmarks, {started}")
    print(
        f"machine: {info['cpus']} CPUs, kernel {info['kernel']}, Python {info['python']}; "
        f"{info['ddrescue']}; {info['ddfs']} (git {git_version()})"
    )
    print()
    summaries: list[Summary] = []
    live: list[live_mount.LiveRow] = []
    notes: list[str] = []
    t0 = time.monotonic()
    try:
        if "clean_copy" not in args.skip:
            summaries += clean_copy.run(rounds=args.rounds)
        if "mapfile_io" not in args.skip:
            summaries += mapfile_io.run(rounds=args.rounds)
        if "simulated_disk" not in args.skip:
            if have_fuse():
                summaries += simulated_disk.run()
            else:
                notes.append("simulated_disk skipped: no /dev/fuse or fusermount3")
        if "live_mount" not in args.skip:
            if have_fuse() and os.geteuid() == 0:
                live = live_mount.run(rounds=args.rounds)
            else:
                notes.append("live_mount skipped: needs /dev/fuse, fusermount3 and root")
    finally:
        remove_scratch()
    print(f"Summary ({started}, {time.monotonic() - t0:.0f} s)")
    if summaries:
        print()
        print("ddfs against GNU ddrescue (ratios are ddfs / ddrescue):")
        print()
        print_table(Summary.headers(), [s.row() for s in summaries])
    if live:
        print()
        print("Live mount (ratios are ddfs mount / the reference named in the row):")
        print()
        live_mount.print_summary(live)
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
