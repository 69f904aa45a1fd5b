"""The planner's signature tests (:mod:`engine.metadata.signatures`): a filesystem module's
``probe`` never matches where its signature test does not (so skipping the module changes no
plan), a test that fails reads exactly what the failing probe reads (so it costs no extra reads
of a failing disk), and a disk of no known filesystem imports none of the modules."""

from __future__ import annotations

import importlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metadata import signatures
from engine.metadata.signatures import SIGNATURES
from engine.metadata.volume import Plan, Volume

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent


class Disk:
    """Sparse disk contents: the planted sectors, zeros elsewhere, some places unreadable;
    it records every read."""

    def __init__(self, size: int, planted: dict[int, bytes], bad: set[int]):
        self.size = size
        self.planted = planted
        self.bad = bad
        self.reads: list[tuple[int, int]] = []

    def read(self, pos: int, size: int) -> bytes | None:
        self.reads.append((pos, size))
        if any(pos <= b < pos + size for b in self.bad):
            return None
        out = bytearray(size)
        for at, data in self.planted.items():
            lo, hi = max(pos, at), min(pos + size, at + len(data))
            if lo < hi:
                out[lo - pos : hi - pos] = data[lo - at : hi - at]
        return bytes(out)


def volume(disk: Disk) -> Volume:
    return Volume(disk.read, 0, disk.size, Plan(disk.size))


def check(disk: Disk) -> None:
    """For each module: probe => signature, and a failing probe reads what the test reads."""
    for path, signature in SIGNATURES.values():
        module = importlib.import_module(path)
        disk.reads.clear()
        found = module.probe(volume(disk))
        probe_reads = list(disk.reads)
        disk.reads.clear()
        passed = signature(volume(disk))
        assert passed or not found, f"{path}: probe matched where the signature test failed"
        if not found and not passed:
            assert disk.reads == probe_reads, path


def boot_sector(oem: bytes, signed: bool, jump: int) -> bytes:
    raw = bytearray(os.urandom(512))
    raw[0] = jump
    raw[3:11] = oem
    raw[510:512] = b"\x55\xaa" if signed else b"\0\0"
    return bytes(raw)


def ext_super(group: int = 0) -> bytes:
    raw = bytearray(os.urandom(1024))
    struct.pack_into("<H", raw, 56, signatures.EXT_MAGIC)
    struct.pack_into("<H", raw, 90, group)
    return bytes(raw)


#: places every module looks at, and what may be found there
PLACES = sorted(
    {0, 512 * 6, 4096 * 6, 1024 * 6, 2048 * 6, signatures.EXT_SB_OFFSET}
    | {signatures.EXFAT_REGION << s for s in signatures.EXFAT_SECTOR_SHIFTS}
    | set(list(signatures.ext_backup_offsets())[:6])
)
SIZE = 32 * MiB
TAILS = [SIZE - b for b in signatures.NTFS_BACKUP_SECTORS]

contents = st.one_of(
    st.builds(
        boot_sector,
        st.sampled_from([b"NTFS    ", b"EXFAT   ", b"MSDOS5.0", b"mkfs.fat", bytes(8)]),
        st.booleans(),
        st.sampled_from([0xEB, 0xE9, 0x00, 0x90]),
    ),
    st.builds(ext_super, st.integers(0, 81)),
    st.binary(min_size=512, max_size=512),
    st.just(bytes(512)),
)


@settings(max_examples=300, deadline=None)
@given(
    planted=st.dictionaries(st.sampled_from(PLACES + TAILS), contents, max_size=4),
    bad=st.sets(st.sampled_from(PLACES + TAILS), max_size=3),
)
def test_probe_implies_signature_and_a_failing_test_reads_what_the_probe_reads(
    planted: dict[int, bytes], bad: set[int]
) -> None:
    check(Disk(SIZE, planted, bad))


def test_nothing_planted_reads_only_the_probes_places() -> None:
    disk = Disk(SIZE, {}, set())
    check(disk)
    for _, signature in SIGNATURES.values():
        assert not signature(volume(disk))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real filesystems made by their own tools."""
    work = tmp_path_factory.mktemp("sig")
    made: dict[str, Path] = {}
    for name, cmd, size in [
        ("ext2-1k", ["mkfs.ext2", "-q", "-b", "1024", "-F"], 16),
        ("ext4", ["mkfs.ext4", "-q", "-F"], 64),
        ("fat12", ["mkfs.vfat", "-F", "12"], 4),
        ("fat16", ["mkfs.vfat", "-F", "16"], 32),
        ("fat32", ["mkfs.vfat", "-F", "32"], 64),
        ("exfat", ["mkfs.exfat"], 16),
        ("ntfs", ["mkntfs", "-Q", "-F", "-q"], 16),
    ]:
        path = work / name
        with open(path, "wb") as fh:
            fh.truncate(size * MiB)
        subprocess.run([*cmd, str(path)], check=True, capture_output=True)
        made[name] = path
    return made


class ImageDisk(Disk):
    def __init__(self, path: Path, blank: tuple[int, int] | None = None):
        super().__init__(path.stat().st_size, {}, set())
        self.data = bytearray(path.read_bytes())
        if blank is not None:
            self.data[blank[0] : blank[1]] = bytes(blank[1] - blank[0])

    def read(self, pos: int, size: int) -> bytes | None:
        self.reads.append((pos, size))
        return bytes(self.data[pos : pos + size])


def test_real_filesystems_and_their_backups(images: dict[str, Path]) -> None:
    """Each image is found by its own module, through the signature test, also with its
    primary boot sector or superblock blanked (then from a backup where the format has one)."""
    from engine.metadata.planner import _candidates

    for name, path in images.items():
        fs = "fat" if name.startswith("fat") else name.split("-")[0].rstrip("24")
        for blank in (None, (0, 4096)):
            disk = ImageDisk(path, blank)
            check(disk)
            found = [m.NAME for m in _candidates(volume(disk)) if m.probe(volume(disk))]
            if blank is None or fs in ("ext", "exfat", "ntfs"):
                assert found[:1] == [fs], (name, blank, found)


def test_a_disk_of_no_known_filesystem_imports_no_filesystem_module(tmp_path: Path) -> None:
    """``ddfs rescue`` of random data plans without importing ext, NTFS, exFAT or FAT."""
    code = (
        "import os, sys\n"
        "from engine.metadata.planner import plan_disk\n"
        "data = os.urandom(8 << 20)\n"
        "plan = plan_disk(lambda p, n: data[p:p + n], len(data))\n"
        "assert plan.filesystems == [], plan.filesystems\n"
        "print(sorted(m for m in sys.modules if m.startswith('engine.metadata.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for _, (path, _sig) in SIGNATURES.items():
        assert path not in out, out
    assert "engine.metadata.signatures" in out
