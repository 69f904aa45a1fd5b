"""Metadata first, end to end: `ddfs domain` for GNU ddrescue -m, and the live mount answering
e2fsck after reading a small part of a slow disk."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from engine.map.mapfile import parse_mapfile
from tests.conftest import run_ddfs, run_ddrescue
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import read_stats, simulated_disk
from tests.test_mount import write_testmap
from tests.test_mount_e2e import P1_SIZE, P1_START, SIZE, build_disk, fsck_verdict


def test_domain_mapfile_for_ddrescue(tmp_path: Path) -> None:
    image, _ = build_disk(tmp_path)
    res = run_ddfs(
        "domain", str(image), str(tmp_path / "o"), str(tmp_path / "m"), str(tmp_path / "dom.map")
    )
    assert res.returncode == 0, res.stderr
    assert "ext at 1048576" in res.stdout
    dom = parse_mapfile(str(tmp_path / "dom.map")).bmap
    assert dom.end == SIZE and 0 < dom.size_of("+") < SIZE // 5
    assert (
        subprocess.run(
            ["ddrescuelog", "-t", str(tmp_path / "dom.map")], capture_output=True
        ).returncode
        == 0
    )
    # GNU ddrescue rescues just the domain; e2fsck is then happy with the partial image
    out = tmp_path / "partial.img"
    res = run_ddrescue(
        "-q", "-m", str(tmp_path / "dom.map"), str(image), str(out), str(tmp_path / "m2")
    )
    assert res.returncode == 0, res.stderr
    p1 = tmp_path / "p1.img"
    p1.write_bytes(out.read_bytes()[P1_START : P1_START + P1_SIZE].ljust(P1_SIZE, b"\0"))
    orig = tmp_path / "p1.orig"
    orig.write_bytes(image.read_bytes()[P1_START : P1_START + P1_SIZE])
    assert fsck_verdict(p1) == fsck_verdict(orig)
    assert parse_mapfile(str(tmp_path / "m2")).bmap.size_of("+") == dom.size_of("+")


@pytest.mark.fuse
def test_fsck_answers_early_on_a_slow_disk(tmp_path: Path) -> None:
    """The headline: e2fsck on the live mount is done after a small part of the disk was
    read, because the metadata is rescued first."""
    image, _ = build_disk(tmp_path)
    orig = tmp_path / "p1.orig"
    orig.write_bytes(image.read_bytes()[P1_START : P1_START + P1_SIZE])
    expected = fsck_verdict(orig)
    write_testmap(tmp_path / "bad.map", SIZE, [(50 << 20, 4096)])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulated_disk(
            image, tmp_path / "sim", tmp_path / "bad.map", rate="2Mi", seek_ms="4"
        ) as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q"),
    ):
        start = time.monotonic()
        wait_for(lambda: (mnt / "p1").exists(), 60, "p1 did not appear")
        assert fsck_verdict(mnt / "p1") == expected
        took = time.monotonic() - start
        read = read_stats(dev)["bytes"]
        wait_for(lambda: status(mnt)["tiers"], 60, "the plan was not made")
        st = status(mnt)
    tiers = {t["tier"]: t for t in st["tiers"]}
    print(json.dumps({"seconds": took, "bytes_read": read, "share": read / SIZE, "tiers": tiers}))
    assert read < 0.15 * SIZE, f"e2fsck needed {read} bytes read from the disk"
    assert tiers["metadata"]["bytes"] > 0


@pytest.mark.fuse
def test_lost_superblock_on_a_failing_disk(tmp_path: Path) -> None:
    """The primary ext4 superblock is a bad sector of the simulated disk: the planner reads
    the backups through the engine and still plans the whole tree."""
    image, _ = build_disk(tmp_path)
    write_testmap(tmp_path / "bad.map", SIZE, [(P1_START + 1024, 1024)])
    (tmp_path / "sim").mkdir()
    with simulated_disk(image, tmp_path / "sim", tmp_path / "bad.map") as dev:
        res = run_ddfs(
            "domain", dev, str(tmp_path / "o"), str(tmp_path / "m"), str(tmp_path / "dom.map")
        )
        healthy = run_ddfs(
            "domain",
            str(image),
            str(tmp_path / "o2"),
            str(tmp_path / "m2"),
            str(tmp_path / "dom2.map"),
        )
    assert res.returncode == 0, res.stderr
    assert healthy.returncode == 0, healthy.stderr
    assert "using the backup of group 1" in res.stdout, res.stdout
    damaged = parse_mapfile(str(tmp_path / "dom.map")).bmap
    whole = parse_mapfile(str(tmp_path / "dom2.map")).bmap
    # everything the healthy plan holds, the damaged one holds too (apart from the bad sector)
    for pos, size, st in whole:
        if st == "+":
            assert damaged.find_forward(pos, "?", pos + size) in (None, (P1_START, P1_START + 4096))


def test_replanning_after_the_tiers(tmp_path: Path, random_file) -> None:
    """After the tiers, the plan is made again; areas it newly finds (metadata unlocked by what
    the tiers rescued) are worked through before the normal schedule, until a fixed point."""
    from engine.options import RescueOptions
    from engine.rescue.builder import prepare
    from engine.schedule.tiers import MetadataFirst

    infile = random_file(8 << 20)
    (tmp_path / "tm").write_text("0 + 1\n0 0x800000 +\n")
    opts = RescueOptions(test_map=str(tmp_path / "tm"), log_reads=str(tmp_path / "reads"))
    r, _ = prepare(str(infile), str(tmp_path / "out"), str(tmp_path / "map"), opts)
    grown = [("metadata", [(0x100000, 0x110000)]), ("redundancy", [(0x600000, 0x610000)])]
    calls = []

    def replan() -> list[tuple[str, list[tuple[int, int]]]]:
        calls.append(1)
        return grown  # the second call finds nothing new: the fixed point

    r.set_schedule(MetadataFirst(r.schedule, [("metadata", [(0x100000, 0x110000)])], replan))
    try:
        r.run()
    finally:
        r.close()
        r.source.close()
        r.output.close()
    reads = [
        int(ln.split()[0], 16)
        for ln in (tmp_path / "reads").read_text().splitlines()
        if ln.startswith("0x")
    ]
    assert reads[:2] == [0x100000, 0x600000]  # the grown tier before the normal schedule
    assert len(calls) == 2
    assert r.map.bmap.size_of("+") == 8 << 20
