"""Benchmark 4: the live mount (``ddfs mount``) against reading without it.

Three questions, each answered in one run with a reference measured alongside:

1. ``sequential``: how fast is finished data read through the mount? The input (default
   1 GiB of seeded random data on tmpfs, with a GPT and one partition ``p1`` from 1 MiB to
   1 MiB before the end) is rescued by ``ddfs mount``; once ``status.json`` says ``finished``,
   ``dd if=X of=/dev/null bs=B`` reads, alternately and in a rotating order, ``MNT/image``,
   OUTFILE directly (tmpfs, page cache) and, as the ceiling of any pyfuse3 server, OUTFILE
   served by the smallest possible pyfuse3 server (:func:`serve_bare`: one ``direct_io``
   file, ``os.pread`` in the trio thread), for ``bs`` 128k, 1M and 4M, plus ``MNT/p1``
   against the same range of OUTFILE at bs=1M. Reported: median MiB/s (from the wall time
   of each ``dd`` process, start-up included), mount / OUTFILE and mount / bare server, and
   the CPU seconds of the ``ddfs mount`` process (all its threads, from ``/proc/PID/stat``)
   per GiB read. Checked: ``image``, ``p1`` and the bare server's file read back equal to
   the input.
2. ``ondemand``: the latency of a 4 KiB read of data not tried yet. A 256 MiB image is served
   by ``ddfs simulate`` (100 MiB/s, 8 ms seek, no bad sectors). ``os.pread`` of 4 KiB at
   random 4 KiB-aligned positions in the upper half of the disk (far ahead of the background
   pass, checked before each sample) is timed in four settings: (A) straight from
   ``MNT/disk``; (B) through a ``ddfs mount`` whose engine is idle (``-s 1Mi``: the schedule
   is over, the rest of the disk is untried); (C) through a ``ddfs mount`` whose copying pass
   is running, with 20 ms between samples; (D) the same, back to back. The modelled disk time
   of each urgent read is ``seek + 4096 / rate`` (verified: the simulator's ``read_sizes``
   must count exactly one 4096-byte read per sample). Reported: median and p90 of the raw
   latency and of latency minus the model, and, from ``status.json`` read before and after
   each sample (B, C), the engine's time serving the request (``serve_seconds``) and the
   latency minus that: in B the mount's own hand-off (FUSE, queue, wake-up, pread of the
   answer), in C that plus the wait for the one background read in progress. D - B is the
   wait when the engine has already gone back to the pass (a seek back) before the next
   read arrives. Checked: every sample returns the image's bytes.
3. ``fsck``: how much of the disk had been read when ``e2fsck -fn MNT/p1`` on the live mount
   finished. A 256 MiB GPT disk with a 200 MiB ext4 partition full of files (``mkfs.ext4 -d``,
   as ``tests/test_mount_e2e.py`` builds it) is served by ``ddfs simulate`` (20 MiB/s, 8 ms
   seek). Reference: e2fsck of the same partition straight from the simulated disk (a
   read-only loop device at the partition's offset). Then ``ddfs mount`` starts; as soon as
   ``p1`` appears, ``e2fsck -fn MNT/p1`` runs; when it ends, the bytes read from the disk
   (``stats.json``) and finished (``status.json``) are taken; the mount then runs to the end
   of its schedule, for the time of a full rescue. Checked: both e2fsck verdicts equal the
   verdict on the original partition.

Every ``ddfs`` process runs with byte-code caching (``bench.common.python_env``). Every mount
is unmounted in ``finally`` and every process is ended by its handle (``tests.simdisk``,
``tests.mountproc``); loop devices are detached in ``finally``.

Layout: this module holds the command line and the summary table; the parts are in
``bench/live_sequential.py``, ``bench/live_ondemand.py`` and ``bench/live_fsck.py``, the bare
server in ``bench/live_bare.py`` and the shared helpers in ``bench/live_common.py``.

Run: ``.venv/bin/python bench/live_mount.py [--only sequential ondemand fsck] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GiB, parse_size, print_table, remove_scratch
from bench.live_bare import BARE_FLAG, serve_bare
from bench.live_common import LiveRow
from bench.live_fsck import fsck_while_rescuing
from bench.live_ondemand import ondemand
from bench.live_sequential import sequential

__all__ = ["PARTS", "LiveRow", "main", "print_summary", "run"]

PARTS = ("sequential", "ondemand", "fsck")


def run(
    parts: Sequence[str] = PARTS,
    rounds: int = 5,
    size: int = GiB,
    samples: int = 50,
    keep: bool = False,
) -> list[LiveRow]:
    """Run the selected parts, print their tables and return the summary rows."""
    rows: list[LiveRow] = []
    if "sequential" in parts:
        rows += sequential(size, rounds, keep)
    if "ondemand" in parts:
        rows += ondemand(samples=samples, keep=keep)
    if "fsck" in parts:
        rows += fsck_while_rescuing(keep=keep)
    return rows


def print_summary(rows: Sequence[LiveRow]) -> None:
    print_table(LiveRow.headers(), [r.row() for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(PARTS), choices=PARTS, help="parts to run")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the sequential part [5]")
    ap.add_argument("--size", default="1Gi", help="input of the sequential part [1Gi]")
    ap.add_argument("--samples", type=int, default=50, help="samples per on-demand setting [50]")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BARE_FLAG]:
        return serve_bare(argv[1], argv[2])
    args = ap.parse_args(argv)
    try:
        rows = run(args.only, args.rounds, parse_size(args.size), args.samples, args.keep)
    finally:
        if not args.keep:
            remove_scratch()
    print("Live mount summary:")
    print()
    print_summary(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
