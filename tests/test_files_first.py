"""Files first (issue 16): ``--first p1:/photos --first p2:/docs`` on a simulated failing disk
holding an ext4 and an NTFS partition. Every file of those folders that has no bad sector is
complete after reading under 10 % of the disk (measured from the read log: the bytes read from
the source until the last of them was whole), where plain metadata first needs most of the
disk; a file with a bad sector is reported damaged; ``ddfs mount --first`` shows the requests
in ``status.json``."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from engine.damage.files import Request, resolve
from engine.map.mapfile import parse_mapfile
from engine.map.ranges import merge
from tests.conftest import run_ddfs, run_ddrescue
from tests.fsimages import make_disk, place
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import simulated_disk
from tests.test_metadata_ntfs import mkntfs, mounted_rw
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse
MiB = 1 << 20
SIZE = 128 * MiB
SPECS = ["p1:/photos", "p2:/docs"]


def fill(root: Path, bulk: str, bulk_files: int, small: str, small_files: int, seed: int) -> None:
    """Big files first (they take the early part of the volume), then the small ones."""
    rng = random.Random(seed)
    (root / bulk).mkdir(parents=True)
    for i in range(bulk_files):
        (root / bulk / f"big{i}.bin").write_bytes(rng.randbytes(6 * MiB))
    (root / small / "sub").mkdir(parents=True)
    for i in range(small_files):
        where = root / small / ("sub" if i % 3 == 0 else "")
        (where / f"f{i:02d}.dat").write_bytes(rng.randbytes(rng.randrange(20_000, 200_000)))


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Request]]:
    work = tmp_path_factory.mktemp("first")
    path = work / "disk.img"
    (p1, s1), (p2, s2) = make_disk(path, "label: gpt\n,60M,L\n,60M,L\n", SIZE)
    fill(work / "ext", "aaa", 7, "photos", 20, 1)
    ext = work / "p1.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(work / "ext"), str(ext), f"{s1 // 1024}k"])
    place(path, ext, p1)
    fill(work / "nt", "bulk", 7, "docs", 15, 2)
    ntfs = work / "p2.ntfs"
    mkntfs(ntfs, s2)

    def copy(mnt: Path) -> None:
        for name in ("bulk", "docs"):  # bulk first: the documents land after it
            subprocess.run(["cp", "-r", str(work / "nt" / name), str(mnt)], check=True)

    mounted_rw(ntfs, work / "mnt", copy)
    place(path, ntfs, p2)
    data = path.read_bytes()
    requests, notes = resolve(lambda p, n: data[p : p + n], SIZE, SPECS)
    assert all(r.found for r in requests), notes
    assert [len(r.files) for r in requests] == [20, 15]
    return path, requests


def reads_of(log: Path) -> list[tuple[int, int, int]]:
    """(pos, size, copied) of every read in a ``--log-reads`` file."""
    out = []
    for line in log.read_text().splitlines():
        if line and not line.startswith("#"):
            pos, size, copied = line.split("\t")[:3]
            out.append((int(pos, 16), int(size), int(copied)))
    return out


def read_until_whole(reads: list[tuple[int, int, int]], files: list[list[tuple[int, int]]]) -> int:
    """Bytes read from the source until every one of ``files`` (spans) was read whole."""
    todo = [merge(spans) for spans in files]
    total = 0
    for pos, _size, copied in reads:
        total += copied
        if copied:
            todo = [_minus(spans, pos, pos + copied) for spans in todo]
            todo = [spans for spans in todo if spans]
        if not todo:
            return total
    raise AssertionError(f"{len(todo)} files never read whole")


def _minus(spans: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        if e <= a or s >= b:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if e > b:
            out.append((b, e))
    return out


def test_named_folders_are_whole_after_a_tenth_of_the_disk(
    disk: tuple[Path, list[Request]], tmp_path: Path
) -> None:
    path, requests = disk
    damaged_file = requests[0].files[3][1]  # one photo gets a bad sector
    bad = sorted([(damaged_file[0][0] + 4096, 4096), (20 * MiB, 64 * 1024), (100 * MiB, 8192)])
    write_testmap(tmp_path / "bad.map", SIZE, bad)
    good_files = [
        spans
        for r in requests
        for _, spans in r.files
        if not any(s < b + n and b < e for s, e in spans for b, n in bad)
    ]
    assert len(good_files) == 34
    shares = {}
    for name, extra in (("first", [f"--first={s}" for s in SPECS]), ("plain", [])):
        (tmp_path / name).mkdir()
        with simulated_disk(path, tmp_path / name, tmp_path / "bad.map") as dev:
            log = tmp_path / f"{name}.log"
            res = run_ddfs(
                "rescue", "-q", *extra, "--log-reads", str(log), dev,
                str(tmp_path / f"{name}.out"), str(tmp_path / f"{name}.map"),
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
        shares[name] = read_until_whole(reads_of(log), good_files) / SIZE
    print(shares)
    assert shares["first"] < 0.10, shares
    assert shares["plain"] > 0.5, shares  # without --first they come with the rest
    with open(tmp_path / "first.out", "rb") as out, open(path, "rb") as src:
        for spans in good_files:
            for s, e in spans:
                assert os.pread(out.fileno(), e - s, s) == os.pread(src.fileno(), e - s, s)


def test_the_mount_reports_each_request(disk: tuple[Path, list[Request]], tmp_path: Path) -> None:
    path, requests = disk
    bad_photo = requests[0].files[0][1][0]
    write_testmap(tmp_path / "bad.map", SIZE, [(bad_photo[0], 4096)])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulated_disk(path, tmp_path / "sim", tmp_path / "bad.map") as dev,
        live_mount(
            dev, tmp_path / "out", tmp_path / "map", mnt, "-q", "--first", SPECS[0],
            "--notify-command", f'echo "$DDFS_STATUS $DDFS_EXIT" > {tmp_path / "note"}',
        ),  # fmt: skip
    ):
        wait_for(lambda: status(mnt)["finished"], 120, "the rescue did not end")
        first = status(mnt)["first"]
        report = run_ddfs("report", str(mnt))  # issue 16 item 7: report MOUNTPOINT
        shown = run_ddfs("status", str(mnt)).stdout
    assert (tmp_path / "note").read_text() == "finished 0\n"  # --notify-command, at the end
    assert f"first {SPECS[0]}: 19 done, 1 damaged, 0 pending of 20 files" in shown, shown
    assert report.returncode == 0, report.stderr
    assert requests[0].files[0][0] in report.stdout, report.stdout
    assert first == [
        {"request": SPECS[0], "found": True, "files": 20, "done": 19, "damaged": 1, "pending": 0}
    ]


def test_a_bad_path_is_a_usage_error(tmp_path: Path) -> None:
    res = run_ddfs("rescue", "--first", "photos", "in", "out", "map")
    assert res.returncode == 1
    assert res.stderr.startswith("ddfs: 'photos': Invalid path in option '--first'")
    res = run_ddfs("rescue", "--first", "p1:/x", "--no-metadata-first", "in", "out", "map")
    assert res.returncode == 1
    assert "Option '--first' needs metadata first" in res.stderr


def test_domain_path_for_ddrescue(disk: tuple[Path, list[Request]], tmp_path: Path) -> None:
    """``ddfs domain --path`` writes the named folders as a ddrescue domain mapfile: GNU
    ddrescue ``-m`` then rescues exactly those files (and their directories' blocks)."""
    path, requests = disk
    dom = tmp_path / "dom.map"
    res = run_ddfs(
        "domain", "--path", SPECS[0], "--path", SPECS[1], str(path),
        str(tmp_path / "o"), str(tmp_path / "m"), str(dom),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    want = merge(span for r in requests for span in r.spans)
    got = [(pos, pos + size) for pos, size, st in parse_mapfile(str(dom)).bmap if st == "+"]
    assert merge(got) == want
    out = tmp_path / "dd.out"
    res = run_ddrescue("-q", "-m", str(dom), str(path), str(out), str(tmp_path / "dd.map"))
    assert res.returncode == 0, res.stderr
    with open(out, "rb") as o, open(path, "rb") as src:
        for _, spans in requests[1].files:
            for s, e in spans:
                assert os.pread(o.fileno(), e - s, s) == os.pread(src.fileno(), e - s, s)


def test_ddfs_first_while_the_mount_runs(disk: tuple[Path, list[Request]], tmp_path: Path) -> None:
    """``ddfs first MOUNTPOINT p1:/photos p2:/docs`` on a running mount (a slow disk: the pass
    is far from those folders): the mount finds the files and reads them next. Every good file
    is whole after under 10 % of the disk more is rescued; the request's progress is in
    ``status.json`` and ``ddfs status``; a path that is not there, and a directory that is not
    a ddfs mount, are said."""
    path, requests = disk
    bad_doc = requests[1].files[2][1][0]
    write_testmap(tmp_path / "bad.map", SIZE, [(bad_doc[0], 4096)])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulated_disk(path, tmp_path / "sim", tmp_path / "bad.map", rate="6Mi") as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q"),
    ):
        wait_for(lambda: status(mnt)["bytes"]["finished"] > 4 * MiB, 60, "no progress")
        before = status(mnt)["bytes"]["finished"]
        res = run_ddfs("first", str(mnt), *SPECS)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "p1:/photos: 20 file(s), rescued next",
            "p2:/docs: 15 file(s), rescued next",
        ]

        def served() -> bool:
            return all(r["pending"] == 0 for r in status(mnt)["first"])

        wait_for(served, 60, "the named files were not read")
        now = status(mnt)
        shown = run_ddfs("status", str(mnt)).stdout
        missing = run_ddfs("first", str(mnt), "p1:/nothing")
        assert now["finished"] is False  # the rest of the disk is still to come
    print("ddfs first: rescued", before, "->", now["bytes"]["finished"])
    assert (now["bytes"]["finished"] - before) / SIZE < 0.10, (before, now["bytes"])
    assert now["first"] == [
        {"request": SPECS[0], "found": True, "files": 20, "done": 20, "damaged": 0, "pending": 0},
        {"request": SPECS[1], "found": True, "files": 15, "done": 14, "damaged": 1, "pending": 0},
    ]
    assert f"first {SPECS[1]}: 14 done, 1 damaged, 0 pending of 15 files" in shown, shown
    assert (missing.returncode, missing.stdout) == (1, "p1:/nothing: not found\n")
    with open(tmp_path / "out", "rb") as out, open(path, "rb") as src:
        for r in requests:
            for _, spans in r.files:
                for s, e in spans:
                    if not s <= bad_doc[0] < e:
                        assert os.pread(out.fileno(), e - s, s) == os.pread(src.fileno(), e - s, s)
    res = run_ddfs("first", str(tmp_path), "p1:/photos")
    assert (res.returncode, res.stderr) == (1, f"ddfs: {tmp_path}: Not a mount point.\n")
