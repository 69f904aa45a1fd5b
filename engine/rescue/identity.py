"""The source's identity, kept in the mapfile as a comment line ddrescue ignores.

A mapfile records which disk it describes: its size, and for a block device its logical sector
size, model and serial number (from sysfs, or udev's database). Resuming the mapfile against
another source (another serial number; without serials, another size) goes on only when a
sample of the rescued sectors holds the same data in the source and the image
(:mod:`engine.rescue.samecopy`: merging damaged copies of a disk), or when the user says so
(``--allow-other-source``).
GNU ddrescue skips the line as a comment, and a mapfile written by ddrescue (no line) is
resumed without a check.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

PREFIX = "# Source identity:"
_FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_FIELDS = ("size", "sector_size", "model", "serial")


@dataclass(frozen=True)
class Identity:
    """What is known of a source; empty or negative fields are unknown."""

    size: int = -1
    sector_size: int = 0
    model: str = ""
    serial: str = ""
    device: bool = False  # a block device (else a file)

    def line(self) -> str:
        """The mapfile comment line (without the newline); ASCII only."""
        parts = [f"size={self.size}"]
        if self.device:
            parts.append("device=1")
        if self.sector_size:
            parts.append(f"sector_size={self.sector_size}")
        for name in ("model", "serial"):
            value = getattr(self, name).encode("ascii", "replace").decode("ascii")
            if value:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                parts.append(f'{name}="{escaped}"')
        return f"{PREFIX} {' '.join(parts)}"

    @classmethod
    def parse(cls, line: str) -> Identity | None:
        """The identity in a comment line, or None if the line is not one."""
        if not line.startswith(PREFIX):
            return None
        values: dict[str, str] = {}
        for name, raw in _FIELD_RE.findall(line[len(PREFIX) :]):
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            values[name] = raw
        try:
            size = int(values.get("size", "-1"))
            sector_size = int(values.get("sector_size", "0"))
        except ValueError:
            return None
        return cls(
            size,
            sector_size,
            values.get("model", ""),
            values.get("serial", ""),
            values.get("device") == "1",
        )

    def difference(self, other: Identity, complete_only: bool = False) -> str:
        """Why ``other`` (the source now) is not the source of this recorded identity, or "".

        The serial number decides when both sides know it: the same disk keeps it behind
        another adapter (which may show another model or sector size) and after its size
        changed (an HPA removed). Without serials the size decides, except for an image file
        completed with ``-C`` (a partial copy grows). Model and sector size never refuse.
        """
        if self.serial and other.serial:
            if self.serial != other.serial:
                return f'serial "{other.serial}", not "{self.serial}" as in the mapfile'
            return ""
        if self.size < 0 or other.size < 0 or self.size == other.size:
            return ""
        if complete_only and not (self.device and other.device):
            return ""
        return f"size {other.size}, not {self.size} as in the mapfile"


def _sysfs_dir(rdev: int) -> str | None:
    path = f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}"
    return os.path.realpath(path) if os.path.exists(path) else None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _udev_serial(rdev: int) -> str:
    """``ID_SERIAL_SHORT`` (else ``ID_SERIAL``) from udev's database, if udev runs."""
    text = _read(f"/run/udev/data/b{os.major(rdev)}:{os.minor(rdev)}")
    found = dict(
        line[2:].split("=", 1)
        for line in text.splitlines()
        if line.startswith("E:") and "=" in line
    )
    return found.get("ID_SERIAL_SHORT") or found.get("ID_SERIAL") or ""


def identify(fd: int, size: int) -> Identity:
    """The identity of the open source ``fd`` whose size is ``size`` (-1: unknown)."""
    st = os.fstat(fd)
    if not stat.S_ISBLK(st.st_mode):
        return Identity(size=size)
    sysdir = _sysfs_dir(st.st_rdev)
    if sysdir is None:
        return Identity(size=size, device=True)
    disk = os.path.dirname(sysdir) if os.path.exists(os.path.join(sysdir, "partition")) else sysdir
    sector = _read(os.path.join(disk, "queue", "logical_block_size"))
    model = _read(os.path.join(disk, "device", "model"))
    serial = _read(os.path.join(disk, "device", "serial")) or _udev_serial(st.st_rdev)
    return Identity(size, int(sector) if sector.isdigit() else 0, model, serial, device=True)


def read_identity(mapfile: str | None) -> Identity | None:
    """The identity recorded in the comment lines before a mapfile's status line, if any."""
    from engine.map.header import header_comments

    for line in header_comments(mapfile):
        found = Identity.parse(line)
        if found is not None:
            return found
    return None


def refusal(infile: str, diff: str, differ: int, compared: int) -> str:
    """The one-line refusal for a source that is not the mapfile's and holds other data."""
    return (
        f"{infile}: Not the source this mapfile was written for ({diff}), and {differ} of "
        f"{compared} rescued sectors compared hold other data; use '--allow-other-source' "
        "if it is another copy of the same disk."
    )


def merging_note(infile: str, diff: str, compared: int) -> str:
    """What a run says when it merges another copy into the image."""
    if compared:
        agree = f"the {compared} rescued sectors compared hold the same data"
    else:
        agree = "no rescued sector could be compared"
    return (
        f"{infile}: not the source this mapfile was written for ({diff}); {agree}: merging it in."
    )
