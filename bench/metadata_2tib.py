"""Benchmark: the metadata plan of sparse 2 TiB disks against what the repair tools read.

Two GPT disks of 2 TiB (sparse), each one partition of 3,000 files: ext4 (``mkfs.ext4 -d``)
and NTFS (``mkntfs -Q``, files copied in through ntfs-3g). For each: the bytes the tools read
(ext4: ``e2fsck -fn``; NTFS: ``ntfsfix -n`` and a read-only ntfs-3g mount walked to every file),
recorded through the read-logging FUSE view of ``ddfs simulate`` by a read-only loop device
without readahead; the bytes of the P0-P2 plan and their ratio (issue 15: at most 2); the share
of the tools' reads inside P0-P3 (at least 99 %); the planning time and peak memory (under
10 s and 200 MB), measured in a process of its own.

Run (root, FUSE): ``.venv/bin/python bench/metadata_2tib.py``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table
from engine.metadata.volume import P2, P3
from tests.fsimages import coverage, populate_tree, read_logged
from tests.test_metadata_2tib import TiB, ext4_disk, mount_and_walk, ntfs_disk, plan_of

MB = 1e6
PLAN_CODE = (
    "import os, sys, time\n"
    "from engine.metadata.planner import plan_disk\n"
    "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
    "t = time.monotonic()\n"
    "plan_disk(lambda p, n: os.pread(fd, n, p), os.fstat(fd).st_size)\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "print(time.monotonic() - t, hwm.split()[1])\n"
)


def measure(name: str, work: Path) -> list[str]:
    tree = work / "tree"
    if not tree.exists():
        populate_tree(tree, nfiles=3000)
    path = work / f"{name}.img"
    if name == "ext4":
        start, size = ext4_disk(path, tree, 2 * TiB)
        tool: object = ["e2fsck", "-fn", "{dev}"]
        what = "e2fsck -fn"
    else:
        start, size = ntfs_disk(path, tree, 2 * TiB)
        tool = partial(mount_and_walk, mnt=work / "mnt")
        what = "ntfsfix -n + ro mount walk"
    reads = read_logged(path, tool, work / f"log-{name}", offset=start, size=size)  # type: ignore[arg-type]
    read_bytes = sum(n for _, n in reads)
    plan = plan_of(path)
    p2 = plan.size_of(P2)
    out = subprocess.run(
        [sys.executable, "-c", PLAN_CODE, str(path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    path.unlink()
    return [
        name,
        what,
        f"{read_bytes / MB:.1f}",
        f"{p2 / MB:.1f}",
        f"{p2 / read_bytes:.2f}",
        f"{100 * coverage(reads, plan.ranges(P3)):.2f} %",
        f"{float(out[0]):.2f}",
        f"{int(out[1]) / 1024:.0f}",
    ]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddfs-bench-2tib-") as tmp:
        for name in ("ext4", "ntfs"):
            print(f"metadata at 2 TiB: {name}", flush=True)
            rows.append(measure(name, Path(tmp)))
    header = ["fs", "tools", "tools read MB", "P0-P2 MB", "ratio", "reads in P0-P3"]
    print_table([*header, "planning s", "peak RSS MB"], rows)


if __name__ == "__main__":
    main()
