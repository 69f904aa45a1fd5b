"""Files first: the disk ranges of the files and directories a user names, such as
``p1:/home/alice/Photos`` (partition 1) or ``/Photos`` (the first partition with a known
filesystem, or the bare disk), found with the scanners of ``ddfs report`` (ext2/3/4, NTFS,
exFAT, FAT): a named directory brings everything under it, recursively, its own blocks included.

:func:`resolve` reads through a :data:`Reader` like the planner (in a rescue, one that rescues
what it reads), so it is run after the metadata tier, when the inodes, records and directories
it needs are already rescued. What it cannot find is said in its notes, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.damage.model import Span, VolumeReport, merge
from engine.errors import DdfsError
from engine.metadata.partitions import TableUnreadable, read_partitions
from engine.metadata.volume import Plan, Reader, Volume


@dataclass
class Request:
    """One ``VOLUME:/path`` and what it resolved to."""

    spec: str
    volume: str  # "p1", ..., or "disk"
    path: str  # "/" separated, no trailing slash ("" is the root)
    files: list[tuple[str, list[Span]]] = field(default_factory=list)  # (path, spans)
    directories: list[tuple[str, list[Span]]] = field(default_factory=list)
    found: bool = False

    @property
    def spans(self) -> list[Span]:
        """The directories' blocks (they list what is inside) and the files' content."""
        return merge(s for _, spans in self.directories + self.files for s in spans)


def parse_spec(spec: str) -> tuple[str, str]:
    """``p1:/a/b`` -> ("p1", "/a/b"); ``/a/b`` -> ("", "/a/b") (the first filesystem found).

    Raises:
        DdfsError: not ``[pN:|disk:]/path``.
    """
    volume, colon, path = spec.partition(":")
    if not colon:
        volume, path = "", spec
    ok = (volume == "" or volume == "disk" or (volume[:1] == "p" and volume[1:].isdigit()))
    if not ok or not path.startswith("/"):
        raise DdfsError(f"'{spec}': Invalid path in option '--first' (use p1:/dir or /dir).")
    return volume, "/" + path.strip("/") if path.strip("/") else ""


def resolve(read: Reader, disk_size: int, specs: list[str]) -> tuple[list[Request], list[str]]:
    """The requests of ``specs`` with the files found for each, and notes."""
    from engine.damage.report import scan_volume  # the scanners: only when --first is given

    notes: list[str] = []
    try:
        parts = read_partitions(read, disk_size)
    except TableUnreadable as exc:
        parts = []
        notes.append(f"files first: partition table unreadable ({exc})")
    volumes = [(f"p{p.number}", p.start, p.size) for p in parts] or [("disk", 0, disk_size)]
    scans: dict[str, VolumeReport | None] = {}
    requests = []
    for spec in specs:
        volume, path = parse_spec(spec)
        req = Request(spec, volume, path)
        requests.append(req)
        for name, start, size in volumes:
            if volume not in ("", name):
                continue
            if name not in scans:
                found: list[str] = []
                scans[name] = scan_volume(Volume(read, start, size, Plan(disk_size)), found)
                notes += [f"files first: {name}: {n}" for n in found]
            report = scans[name]
            if report is None:
                continue
            req.volume = name
            _collect(req, report)
            if req.found or volume:
                break
        if not req.found:
            notes.append(f"files first: {spec} not found")
    return requests, notes


def _collect(req: Request, report: VolumeReport) -> None:
    prefix = req.path + "/"
    for entry in report.entries:
        path = entry.path.rstrip("/") if entry.path != "/" else ""
        if path != req.path and not path.startswith(prefix) and req.path:
            continue
        req.found = True
        kind = req.directories if entry.kind == "directory" else req.files
        kind.append((entry.path, list(entry.spans)))
