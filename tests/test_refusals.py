"""Bad arguments and dangerous requests: each refused with a clear message, nothing written.

For every case the exit status is GNU ddrescue 1.27's (run side by side where ddrescue also
refuses), the first line of stderr says what is wrong, there is no traceback, and nothing is
written: the input, the output and the mapfile keep their bytes, size, mtime and ctime, and no
file appears in their directory. Cases: output equal to the input (by name, through a symlink,
a hard link, or another device node of the same block device), the mapfile equal to either
(or its ``.bak`` named like one), a block-device output without ``-f`` (and ``-f`` with
``-S``/``-p``/``-x``), ``ddfs mount`` on a mount point that is not an empty directory or is
already a mount, and a mapfile written for another disk (source identity).
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import run_ddfs, run_ddrescue
from tests.faults import Untouched, dir_listing, tmpfs
from tests.simdisk import is_mounted, loop_device


def check_refused(
    tmp_path: Path,
    args: Sequence[str],
    message: str,
    watch: Sequence[Path] = (),
    *,
    command: str = "rescue",
    ddrescue: bool = True,
    one_line: bool = True,
) -> None:
    """Run ``ddfs COMMAND ARGS`` (and ddrescue ARGS): exit 1, ``message``, nothing written.

    With ``ddrescue``, GNU ddrescue runs first on the same arguments and must refuse them with
    ``message`` too; ddfs must then print the same first line (its own name in front).
    """
    files = Untouched(*[p for p in watch if p.exists()])
    listing = dir_listing(tmp_path)
    if ddrescue:
        ref = run_ddrescue(*args, stdin=subprocess.DEVNULL)
        assert ref.returncode == 1, ref.stderr
        files.check()
        assert dir_listing(tmp_path) == listing, "ddrescue wrote (the case is not a refusal)"
        first = ref.stderr.splitlines()[0]
        assert first.startswith("ddrescue: ") and message in first, ref.stderr
        message = first.removeprefix("ddrescue: ")
    res = run_ddfs(command, *args)
    assert res.returncode == 1, (args, res.returncode, res.stderr)
    lines = res.stderr.splitlines()
    assert "Traceback" not in res.stderr
    files.check()
    assert dir_listing(tmp_path) == listing, "a file was created or changed"
    assert lines and lines[0] == f"ddfs: {message}", res.stderr
    if one_line:
        assert len(lines) == 1, res.stderr


@pytest.fixture
def infile(tmp_path: Path) -> Path:
    path = tmp_path / "in"
    path.write_bytes(random.Random(2).randbytes(1 << 20))
    return path


OUT_IS_IN = ["same name", "dot path", "symlink", "hard link"]


@pytest.mark.parametrize("case", OUT_IS_IN)
def test_output_is_the_input(tmp_path: Path, infile: Path, case: str) -> None:
    out = {
        "same name": lambda: str(infile),
        "dot path": lambda: f"{tmp_path}/./in",
        "symlink": lambda: (tmp_path / "link").symlink_to(infile) or str(tmp_path / "link"),
        "hard link": lambda: os.link(infile, tmp_path / "hard") or str(tmp_path / "hard"),
    }[case]()
    mp = str(tmp_path / "map")
    check_refused(tmp_path, [str(infile), out, mp], "Infile and outfile are the same.", [infile])


MAP_IS = [
    "map symlink to input",
    "map hard link to output",
    "map.bak is the input",
    "map.bak is the output",
]


@pytest.mark.parametrize("case", MAP_IS)
def test_mapfile_is_the_input_or_output(tmp_path: Path, infile: Path, case: str) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old output")
    watch = [infile, out]
    if case == "map symlink to input":
        link = tmp_path / "maplink"
        link.symlink_to(infile)
        args, message = [str(infile), str(out), str(link)], "Infile and mapfile are the same."
    elif case == "map hard link to output":
        hard = tmp_path / "hardout"
        os.link(out, hard)
        args, message = [str(infile), str(out), str(hard)], "Outfile and mapfile are the same."
    elif case == "map.bak is the output":  # MAP.bak may not be named like the output
        out_bak = tmp_path / "image.bak"
        out_bak.write_bytes(b"old output")
        watch.append(out_bak)
        args = [str(infile), str(out_bak), str(tmp_path / "image")]
        message = "Outfile and mapfile backup are the same."
    else:  # MAP.bak may not be named like the input either
        bak_in = tmp_path / "disk.bak"
        os.link(infile, bak_in)
        args = [str(bak_in), str(out), str(tmp_path / "disk")]
        message = "Infile and mapfile backup are the same."
    check_refused(tmp_path, args, message, watch)


def test_mapfile_not_a_regular_file(tmp_path: Path, infile: Path) -> None:
    (tmp_path / "mapdir").mkdir()
    check_refused(
        tmp_path,
        [str(infile), str(tmp_path / "out"), str(tmp_path / "mapdir")],
        "Mapfile exists and is not a regular file.",
        [infile],
    )


@contextmanager
def scratch_device(tmp_path: Path, size: int = 4 << 20) -> Iterator[tuple[str, Path]]:
    """A writable loop device over a scratch file (detached on exit)."""
    backing = tmp_path / "dev" / "backing"
    backing.parent.mkdir()
    backing.write_bytes(random.Random(4).randbytes(size))
    with loop_device(backing, read_only=False) as dev:
        yield dev, backing


def test_block_device_output_needs_force(tmp_path: Path, infile: Path) -> None:
    with scratch_device(tmp_path) as (dev, backing):
        mp = tmp_path / "map"
        check_refused(
            tmp_path,
            [str(infile), dev, str(mp)],
            f"{dev}: Output file exists and is not a regular file.",
            [infile, backing],
            one_line=False,
        )
        res = run_ddfs("rescue", "-q", str(infile), dev, str(mp))
        assert "Use '--force' if you really want to overwrite it" in res.stderr
        for extra in ("-S", "-p", "-x1Mi"):  # -f does not cover these on a device
            check_refused(
                tmp_path,
                ["-f", extra, str(infile), dev, str(mp)],
                f"{dev}: Output file exists and is not a regular file.",
                [infile, backing],
                one_line=False,
            )


def test_output_is_the_input_device(tmp_path: Path) -> None:
    """The input a block device, the output the same device by name or through another node
    with the same major:minor. ddrescue, comparing only names and inodes, copies the device
    onto itself through the second node; ddfs compares the device numbers too."""
    with scratch_device(tmp_path) as (dev, backing):
        mp = str(tmp_path / "map")
        check_refused(tmp_path, ["-f", dev, dev, mp], "Infile and outfile are the same.", [backing])
        st = os.stat(dev)
        alias = tmp_path / "alias"
        os.mknod(alias, 0o600 | 0o060000, st.st_rdev)  # S_IFBLK
        try:
            check_refused(
                tmp_path,
                ["-f", dev, str(alias), mp],
                f"{alias}: Infile and outfile are the same.",
                [backing],
                ddrescue=False,
            )
        finally:
            alias.unlink()


# ------------------------------------------------------------------ ddfs mount
def mount_refused(tmp_path: Path, infile: Path, mnt: Path, message: str) -> None:
    check_refused(
        tmp_path,
        [str(infile), str(tmp_path / "out"), str(tmp_path / "map"), str(mnt)],
        message,
        [infile],
        command="mount",
        ddrescue=False,
    )


@pytest.mark.fuse
def test_mount_point_refusals(tmp_path: Path, infile: Path) -> None:
    mnt = tmp_path / "mnt"
    mount_refused(tmp_path, infile, mnt, f"{mnt}: Can't use mount point: No such file or directory")
    mnt.write_text("a file")
    mount_refused(tmp_path, infile, mnt, f"{mnt}: Mount point is not a directory.")
    mnt.unlink()
    mnt.mkdir()
    (mnt / "x").write_text("not empty")
    mount_refused(tmp_path, infile, mnt, f"{mnt}: Mount point is not empty.")
    (mnt / "x").unlink()
    with tmpfs(mnt, "1m"):
        assert is_mounted(mnt)
        mount_refused(
            tmp_path, infile, mnt, f"{mnt}: Mount point is already a mount. Unmount it first."
        )
    assert not is_mounted(mnt)
    # the rescue refusals apply to the mount as well
    check_refused(
        tmp_path,
        [str(infile), str(infile), str(tmp_path / "map"), str(mnt)],
        f"{infile}: Infile and outfile are the same.",
        [infile],
        command="mount",
        ddrescue=False,
    )


# ------------------------------------------------------------------ another disk's mapfile
def test_mapfile_of_another_disk(tmp_path: Path, infile: Path) -> None:
    """A mapfile records its source's identity; resuming it against a different source is
    refused (exit 1) unless ``--allow-other-source``."""
    out, mp = tmp_path / "out", tmp_path / "map"
    first = run_ddfs("rescue", "-q", "-s", "512Ki", str(infile), str(out), str(mp))
    assert first.returncode == 0, first.stderr
    assert any(line.startswith("# Source identity:") for line in mp.read_text().splitlines())
    other = tmp_path / "other"
    other.write_bytes(random.Random(3).randbytes(2 << 20))
    watch = [infile, other, out, mp]
    files = Untouched(*watch)
    listing = dir_listing(tmp_path)
    res = run_ddfs("rescue", "-q", str(other), str(out), str(mp))
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("ddfs: ") and "Traceback" not in res.stderr
    assert "--allow-other-source" in res.stderr, res.stderr
    files.check()
    assert dir_listing(tmp_path) == listing
    res = run_ddfs("rescue", "-q", "--allow-other-source", str(other), str(out), str(mp))
    assert res.returncode == 0, res.stderr


def test_a_mounted_output_is_refused_even_with_force(tmp_path: Path, infile: Path) -> None:
    """Issue 16, item 5: ``-f`` onto a loop device holding a mounted ext4 wrote over the live
    filesystem (after tracebacks of the planner). ddfs refuses it, whole or by a partition,
    before anything is opened for writing; the filesystem stays clean. (GNU ddrescue 1.27
    writes there: this is ddfs's own refusal.)"""
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as fh:
        fh.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing, read_only=False) as dev:
        subprocess.run(["mount", dev, str(mnt)], check=True, timeout=30)
        try:
            (mnt / "precious").write_bytes(b"x" * 4096)
            check_refused(
                tmp_path,
                ["-f", str(infile), dev, str(tmp_path / "map")],
                f"{dev}: Output device is in use (mounted on {mnt}); not writing to it.",
                [infile],
                ddrescue=False,
            )
        finally:
            subprocess.run(["umount", str(mnt)], check=True, timeout=30)
    fsck = subprocess.run(["e2fsck", "-fn", str(backing)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout


def test_a_device_with_a_mounted_partition_is_refused(tmp_path: Path, infile: Path) -> None:
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(40 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\n,30M,L\n", text=True, check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    dev = subprocess.run(
        ["losetup", "-P", "-f", "--show", str(disk)], capture_output=True, text=True, check=True
    ).stdout.strip()
    part = f"{dev}p1"
    try:
        part = partition_node(dev, tmp_path)
        subprocess.run(["mkfs.ext4", "-q", "-F", part], check=True)
        subprocess.run(["mount", part, str(mnt)], check=True, timeout=30)
        try:
            res = run_ddfs("rescue", "-f", str(infile), dev, str(tmp_path / "map"))
            assert res.returncode == 1, res.stderr
            assert res.stderr.strip() == (
                f"ddfs: {dev}: Output device is in use (mounted on {mnt}); not writing to it."
            )
            assert not (tmp_path / "map").exists()
        finally:
            subprocess.run(["umount", str(mnt)], check=True, timeout=30)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)


def partition_node(dev: str, where: Path) -> str:
    """The node of ``dev``'s first partition (made from sysfs if no udev made it)."""
    name = os.path.basename(dev)
    sysdev = Path(f"/sys/block/{name}/{name}p1/dev")
    if not sysdev.exists():  # the scan of losetup -P may not have run here: ask for it
        subprocess.run(["partx", "-a", dev], capture_output=True, timeout=30)
    for _ in range(50):
        if os.path.exists(f"{dev}p1"):
            return f"{dev}p1"
        if sysdev.exists():
            major, minor = map(int, sysdev.read_text().split(":"))
            node = where / f"{name}p1"
            os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
            return str(node)
        time.sleep(0.1)
    raise AssertionError(f"no partition of {dev} appeared")


def test_a_read_only_output_is_named(tmp_path: Path, infile: Path) -> None:
    """Issue 16, item 6: ``Can't open output file: Read-only file system`` now names the
    file, as ddrescue's message does (same first line, exit 1, nothing written)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        check_refused(
            tmp_path,
            [str(infile), str(ro / "out"), str(tmp_path / "map")],
            "Can't open output file: Read-only file system",
            [infile],
        )
    finally:
        subprocess.run(["umount", str(ro)], check=True, timeout=30)


def test_a_mounted_btrfs_output_is_refused(tmp_path: Path, infile: Path) -> None:
    """btrfs shows an anonymous device number in mountinfo: the mount's source names the
    device, and that is enough to refuse it."""
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as fh:
        fh.truncate(200 << 20)
    subprocess.run(["mkfs.btrfs", "-q", "-f", str(backing)], check=True, capture_output=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing, read_only=False) as dev:
        subprocess.run(["mount", "-o", "ro", dev, str(mnt)], check=True, timeout=30)
        try:
            res = run_ddfs("rescue", "-f", str(infile), dev, str(tmp_path / "map"))
        finally:
            subprocess.run(["umount", str(mnt)], check=True, timeout=30)
    assert res.returncode == 1, res.stderr
    assert res.stderr == (
        f"ddfs: {dev}: Output device is in use (mounted on {mnt}); not writing to it.\n"
    )
