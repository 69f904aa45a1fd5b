"""Partition tables read by engine.metadata.partitions, checked against sfdisk (the oracle)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.metadata.partitions import TableUnreadable, read_partitions

LAYOUTS = {
    "gpt": "label: gpt\n,16M,L\n,8M,L\n,,L\n",
    "mbr with logicals": "label: dos\n,8M,83\n,8M,c\n,,5\n,4M,83\n,4M,83\n,2M,7\n",
    "mbr primaries": "label: dos\n,20M,83\n,,7\n",
}


def make_disk(path: Path, layout: str, size: int = 64 << 20) -> bytearray:
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    return bytearray(path.read_bytes())


def sfdisk_view(path: Path) -> list[tuple[int, int, int]]:
    table = json.loads(
        subprocess.run(
            ["sfdisk", "-J", str(path)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    out = []
    for p in table["partitions"]:
        if table["label"] == "dos" and p["type"] in ("5", "f", "85"):
            continue
        number = int(p["node"].rsplit(path.name, 1)[1])
        out.append((number, p["start"] * 512, p["size"] * 512))
    return out


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_tables_match_sfdisk(name: str, tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    data = make_disk(path, LAYOUTS[name])
    parts = read_partitions(lambda pos, n: bytes(data[pos : pos + n]), len(data))
    assert [(p.number, p.start, p.size) for p in parts] == sfdisk_view(path)


def test_gpt_backup_used_when_primary_damaged(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    data = make_disk(path, LAYOUTS["gpt"])
    expected = sfdisk_view(path)
    data[512:1024] = bytes(512)  # primary header gone
    parts = read_partitions(lambda pos, n: bytes(data[pos : pos + n]), len(data))
    assert [(p.number, p.start, p.size) for p in parts] == expected


def test_unreadable_sector_is_reported(tmp_path: Path) -> None:
    data = make_disk(tmp_path / "disk.img", LAYOUTS["mbr with logicals"])

    def read(pos: int, n: int) -> bytes | None:
        return None if pos >= 512 else bytes(data[pos : pos + n])

    with pytest.raises(TableUnreadable):
        read_partitions(read, len(data))


def test_no_table() -> None:
    assert read_partitions(lambda pos, n: bytes(n), 1 << 20) == []
