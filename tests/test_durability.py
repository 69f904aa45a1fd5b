"""Durability seen through strace: the source opened read-only, the output fsynced before every
map save, and every save atomic (temp file, fsync, rename, fsync of the directory)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ddfs_cmd, map_lines


def trace(tmp_path: Path, *args: str) -> list[str]:
    log = tmp_path / "strace.log"
    subprocess.run(
        [
            "strace",
            "-f",
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close",
            "-o",
            str(log),
            *ddfs_cmd("rescue", *args),
        ],
        check=True,
        capture_output=True,
    )
    return log.read_text().splitlines()


def test_source_read_only_and_data_synced_before_map(tmp_path: Path, random_file) -> None:
    infile = random_file(2 << 20)
    before = infile.read_bytes()
    out, mp = tmp_path / "out", tmp_path / "map"
    lines = trace(
        tmp_path, "-q", "--mapfile-interval=0", "-c", "256", str(infile), str(out), str(mp)
    )
    opens = [ln for ln in lines if "openat(" in ln and str(infile) in ln]
    assert opens and all("O_RDONLY" in ln and "O_RDWR" not in ln for ln in opens), opens
    out_fd = next(
        re.search(r"= (\d+)$", ln).group(1)  # type: ignore[union-attr]
        for ln in lines
        if "openat(" in ln and f'"{out}"' in ln
    )
    saves = 0
    synced_out = False
    synced_tmp = False
    for ln in lines:
        if re.search(rf"fsync\({out_fd}\)", ln):
            synced_out = True
        elif "fsync(" in ln:
            synced_tmp = True
        elif "rename(" in ln and f'"{mp}"' in ln:
            assert synced_out, "map saved before the output was fsynced"
            assert synced_tmp, "temporary map renamed before it was fsynced"
            saves += 1
            synced_out = synced_tmp = False
    assert saves >= 8, saves  # one per read with --mapfile-interval=0
    assert infile.read_bytes() == before == out.read_bytes()
    assert map_lines(mp)[1:] == [f"0x00000000  0x{2 << 20:08X}  +"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "map", "out", "strace.log"]
