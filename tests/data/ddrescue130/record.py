"""Record GNU ddrescue 1.30's read logs and final maps in this folder (see README.md).

Run with the 1.30 binary at ``$DDR`` (default /work/ddr130/bin/ddrescue):
``python3 tests/data/ddrescue130/record.py``. Everything is deterministic: the random cases come
from ``random.Random(seed)``, the inputs are sparse files, and ddrescue runs in test mode.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path

DDR = os.environ.get("DDR", "/work/ddr130/bin/ddrescue")
OUT = Path(__file__).resolve().parent
OPTS = ["", "-R", "-u", "-r1", "-K0", "-c16", "-N", "--no-trim", "-n", "--cpass=2"]
OPTS += ["--cpass=1,3", "-M", "-A", "-R -r2", "-c7 -b1024", "-K 128Ki,1Mi", "-N -n", "-u -R"]
Blocks = list[list]


def random_blocks(r: random.Random, size: int, statuses: str, ss: int) -> Blocks:
    """Blocks of random lengths (1 to 1000 sectors) and statuses over ``size`` bytes."""
    pos, out = 0, []
    while pos < size:
        n = min(size - pos, r.choice([1, 1, 2, 3, 8, 40, 128, 300, 1000]) * ss)
        st = r.choice(statuses)
        if out and out[-1][2] == st:
            out[-1][1] += n
        else:
            out.append([pos, n, st])
        pos += n
    return out


def map_text(blocks: Blocks, status: str = "?") -> str:
    head = f"0x{0:08X}     {status}               1\n"
    return head + "".join(f"0x{p:08X}  0x{s:08X}  {st}\n" for p, s, st in blocks)


def record(name: str, test_map: str, start: str | None, opts: list[str], shared: str | None):
    """Run 1.30 on one case in a scratch folder; store its files; return the case's entry."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        d = Path(tmp)
        (d / "test.map").write_text(test_map)
        last = [ln for ln in test_map.splitlines() if ln.startswith("0x")][-1].split()
        size = int(last[0], 16) + int(last[1], 16)
        with open(d / "in.img", "wb") as fh:
            fh.truncate(size)
        if start is not None:
            (d / "out.map").write_text(start)
        files = ["-H", "test.map", "--log-reads=reads.log", "in.img", "out.img", "out.map"]
        cmd = ["ddrescue", "-q", "-f", *opts, *files]
        res = subprocess.run([DDR, *cmd[1:]], cwd=d, capture_output=True, text=True)
        reads = "".join(ln for ln in (d / "reads.log").open() if ln.startswith("0x"))
        final = "".join(ln for ln in (d / "out.map").open() if not ln.startswith("#"))
    stored = {"reads.gz": reads, "final.map.gz": final}
    if shared is None:
        stored["test.map.gz"] = test_map
    if start is not None:
        stored["start.map.gz"] = start
    for suffix, text in stored.items():
        (OUT / f"{name}.{suffix}").write_bytes(gzip.compress(text.encode(), 9, mtime=0))
    return {
        "name": name,
        "options": opts,
        "size": size,
        "start_map": start is not None,
        "exit": res.returncode,
        "reads": reads.count("\n"),
        "command": " ".join(cmd),
        "test_map": shared or f"{name}.test.map.gz",
    }


def main() -> None:
    cases = []
    for seed in range(16):
        r = random.Random(seed)
        opts = r.choice(OPTS).split()
        ss = 1024 if "-b1024" in opts else 512
        size = r.choice([1, 2, 4]) << 20
        test_map = map_text(random_blocks(r, size, "++++++-", ss), "+")
        start = None
        if r.random() < 0.5:
            blocks = random_blocks(random.Random(seed + 1), size, "??*/-++", ss)
            start = map_text(blocks, r.choice("?*/-+"))
        cases.append(record(f"r{seed:02d}", test_map, start, opts, None))
    for name, opts in (("d01", ["-n", "-S"]), ("d07", ["-n", "-S"]), ("d02R", ["-n", "-S", "-R"])):
        shared = f"../deadhead/{name[:3]}.map.gz"
        test_map = gzip.decompress((OUT / shared).read_bytes()).decode()
        cases.append(record(name, test_map, None, opts, shared))
    # a map ddrescue 1.30 saved while sweeping ('%' in its status line), resumed
    shared = "../deadhead/d00_sweep_source.map.gz"
    test_map = gzip.decompress((OUT / shared).read_bytes()).decode()
    start = gzip.decompress((OUT / "../deadhead/d01_sweeping.map.gz").read_bytes()).decode()
    cases.append(record("s01", test_map, start, ["-n", "-S"], shared))
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
