"""The case record (issue 16): ``ddfs rescue --hash`` and ``ddfs hash`` write the image's hashes,
whole and per partition, with the command line, the source identity, the times and the bad
areas, into ``MAPFILE.record``; unreadable areas hash as the zeros the image holds there."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.conftest import run_ddfs
from tests.fsimages import make_disk
from tests.test_mount import write_testmap

MiB = 1 << 20
SIZE = 16 * MiB


def digest(path: Path, algorithm: str, start: int = 0, size: int | None = None) -> str:
    data = path.read_bytes()
    end = len(data) if size is None else start + size
    return hashlib.new(algorithm, data[start:end].ljust(end - start, b"\0")).hexdigest()


def test_rescue_hash_writes_the_case_record(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    ((start, size),) = make_disk(disk, "label: gpt\n,12M,L\n", SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={start}", str(disk), "12M"], check=True)
    bad = [(5 * MiB, 8192)]
    write_testmap(tmp_path / "tm", SIZE, bad)  # test mode: these bytes cannot be read
    out, mp = tmp_path / "out", tmp_path / "map"
    res = run_ddfs("rescue", "--hash", "sha256,md5", "-H", str(tmp_path / "tm"), str(disk),
                   str(out), str(mp))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"Case record with the image's hashes: {mp}.record" in res.stdout
    record = (Path(f"{mp}.record")).read_text()
    assert out.read_bytes()[5 * MiB : 5 * MiB + 8192] == bytes(8192)  # what the image holds
    assert f"sha256: {digest(out, 'sha256', 0, SIZE)}" in record
    assert f"md5: {digest(out, 'md5', 0, SIZE)}" in record
    assert f"sha256: {digest(out, 'sha256', start, size)}" in record  # partition 1
    assert f"  p1 (bytes {start}-{start + size - 1})" in record
    assert "Bad areas:    1 (8192 bytes)" in record
    assert f"  0x{5 * MiB:010X}  8192 bytes" in record
    assert "Command line: ddfs rescue --hash sha256,md5" in record
    assert "Source:       Source identity: size=16777216" in record
    assert "Started: " in record and "Ended: " in record
    # later, or again: ddfs hash gives the same digests
    res = run_ddfs("hash", "--hash", "sha256", str(out), str(mp), "-o", str(tmp_path / "r2"))
    assert res.returncode == 0, res.stderr
    again = (tmp_path / "r2").read_text()
    assert f"sha256: {digest(out, 'sha256', 0, SIZE)}" in again
    assert res.stdout == again


def test_a_bad_hash_name_is_a_usage_error(tmp_path: Path) -> None:
    res = run_ddfs("rescue", "--hash", "crc", "in", "out", "map")
    assert res.returncode == 1
    assert res.stderr.startswith("ddfs: 'crc': Invalid hash in option '--hash'")
