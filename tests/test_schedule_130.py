"""``--schedule=ddrescue-1.30`` makes exactly the reads GNU ddrescue 1.30 makes.

CI has no ddrescue 1.30 binary (Debian 12 packages 1.27), so its behaviour is recorded in
``tests/data/ddrescue130`` (README.md there gives the build and the exact commands): for each
case the test map, the map a run resumed (if any), the options, and 1.30's read log and final
map. Each case runs ddfs the same way, in test mode on a sparse input, and compares the read
log's data lines and the final map line by line. The cases: 16 random ones (1-4 MiB, random bad
sectors, half of them resuming a random map of every status, with options that change the
schedule: ``-R -u -r1 -K -c -b -N --no-trim -n --cpass -A``), and three dead-head maps of
``tests/data/deadhead`` (``-n``, one with ``-R``), which exercise the sweeping phase, and a
resume of the map 1.30 saved while sweeping (``%``: the sweep goes on).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.oracle import DDFS

DATA = Path(__file__).parent / "data" / "ddrescue130"
CASES = json.loads((DATA / "cases.json").read_text())


def unzip(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reads_and_map_as_ddrescue_130(case: dict, tmp_path: Path) -> None:
    (tmp_path / "test.map").write_text(unzip(DATA / case["test_map"]))
    if case["start_map"]:
        (tmp_path / "out.map").write_text(unzip(DATA / f"{case['name']}.start.map.gz"))
    with open(tmp_path / "in.img", "wb") as fh:
        fh.truncate(case["size"])
    args = ["-q", "-f", *case["options"], "-H", "test.map", "--log-reads=reads.log"]
    cmd = [DDFS, "rescue", "--schedule=ddrescue-1.30", *args, "in.img", "out.img", "out.map"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == case["exit"], res.stderr
    with open(tmp_path / "reads.log") as fh:
        reads = [line for line in fh if line.startswith("0x")]
    expected = unzip(DATA / f"{case['name']}.reads.gz").splitlines(keepends=True)
    assert len(reads) == case["reads"] == len(expected)
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(reads, expected, strict=True)) if a != b), None
    )
    assert first_diff is None, (
        f"read {first_diff}: {reads[first_diff]!r} != {expected[first_diff]!r}"
    )
    with open(tmp_path / "out.map") as fh:
        final = [line for line in fh if not line.startswith("#")]
    assert final == unzip(DATA / f"{case['name']}.final.map.gz").splitlines(keepends=True)
    assert os.path.getsize(tmp_path / "out.map") > 0


def test_reads_stay_inside_a_domain_of_several_ranges(tmp_path: Path) -> None:
    """With ``-m`` the domain is several ranges: 1.30's block walks (sweeping, trimming) read
    inside them only, as ddrescue 1.30 does (checked against the binary on 40 random cases of
    this kind while writing this test)."""
    size = 1 << 20
    ranges = [(0x10000, 0x40000), (0x60000, 0x90000), (0xC0000, 0xF0000)]
    dom = ["0x00000000     +               1"]
    pos = 0
    for a, b in ranges:
        dom += [f"0x{pos:08X}  0x{a - pos:08X}  ?", f"0x{a:08X}  0x{b - a:08X}  +"]
        pos = b
    dom.append(f"0x{pos:08X}  0x{size - pos:08X}  ?")
    (tmp_path / "dom.map").write_text("\n".join(dom) + "\n")
    bad = [(0x20000, 0x3000), (0x3F000, 0x25000), (0x70000, 0x800), (0xD0000, 0x21000)]
    test = ["0x00000000     +               1"]
    pos = 0
    for a, n in bad:
        test += [f"0x{pos:08X}  0x{a - pos:08X}  +", f"0x{a:08X}  0x{n:08X}  -"]
        pos = a + n
    test.append(f"0x{pos:08X}  0x{size - pos:08X}  +")
    (tmp_path / "test.map").write_text("\n".join(test) + "\n")
    with open(tmp_path / "in.img", "wb") as fh:
        fh.truncate(size)
    for extra in ([], ["-R"]):
        log = tmp_path / "reads.log"
        args = ["-q", *extra, "-m", "dom.map", "-H", "test.map", f"--log-reads={log.name}"]
        cmd = [DDFS, "rescue", "--schedule=ddrescue-1.30", *args, "in.img", "o.img", "o.map"]
        (tmp_path / "o.map").unlink(missing_ok=True)
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        reads = [line.split() for line in log.read_text().splitlines() if line.startswith("0x")]
        assert reads
        for ipos, n, *_ in reads:
            start = int(ipos, 16)
            assert any(a <= start and start + int(n) <= b for a, b in ranges), (ipos, n)
