"""The case record: the hashes of a rescued image (whole, and per partition) with what a case
file needs beside them, as dc3dd and dcfldd users expect: the ddfs version, the command line,
the source's identity (model, serial, size, from the mapfile's header), the start and end
times, the bad areas and the rescued share. Written as plain text beside the mapfile
(``MAPFILE.record``) by ``ddfs rescue --hash`` at the end of a rescue and by ``ddfs hash``.

The hashes are of what the image holds: an area the map does not call finished is hashed as
the bytes the image has there (zeros, unless something wrote them), and the record says how
many such bytes there are, so that a later run over the same areas can be compared.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

from engine import DDRESCUE_VERSION, __version__
from engine.errors import DdfsError
from engine.map.blockmap import BAD_SECTOR, FINISHED, BlockMap
from engine.metadata.partitions import TableUnreadable, read_partitions

CHUNK = 1 << 20
ALGORITHMS = ("md5", "sha1", "sha256", "sha512")


def parse_algorithms(text: str) -> list[str]:
    """``sha256,md5`` -> ["sha256", "md5"].

    Raises:
        DdfsError: an unknown name.
    """
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ALGORITHMS]
    if not names or bad:
        known = ", ".join(ALGORITHMS)
        raise DdfsError(f"'{text}': Invalid hash in option '--hash' (one or more of {known}).")
    return list(dict.fromkeys(names))


@dataclass
class Hashes:
    """The digests of one range of the image."""

    name: str  # "image", "p1", ...
    start: int
    size: int
    digests: dict[str, str] = field(default_factory=dict)


def hash_image(image: str, size: int, algorithms: list[str]) -> list[Hashes]:
    """Digests of ``image[0:size]`` and of each partition of it (a missing tail reads as
    zeros, as the image would be extended)."""
    try:
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DdfsError(f"{image}: Can't open image: {exc.strerror}") from None
    try:

        def read(pos: int, n: int) -> bytes:
            data = os.pread(fd, n, pos)
            return data + bytes(n - len(data))

        try:
            parts = read_partitions(lambda p, n: read(p, n) if p + n <= size else None, size)
        except TableUnreadable:
            parts = []
        ranges = [Hashes("image", 0, size)]
        ranges += [Hashes(f"p{p.number}", p.start, min(p.size, size - p.start)) for p in parts]
        for h in ranges:
            digests = [hashlib.new(a) for a in algorithms]
            for pos in range(h.start, h.start + h.size, CHUNK):
                chunk = read(pos, min(CHUNK, h.start + h.size - pos))
                for d in digests:
                    d.update(chunk)
            h.digests = {a: d.hexdigest() for a, d in zip(algorithms, digests, strict=True)}
        return ranges
    finally:
        os.close(fd)


def record_text(
    hashes: list[Hashes],
    bmap: BlockMap,
    *,
    image: str,
    mapfile: str,
    command_line: str,
    identity: str = "",
    started: float | None = None,
    ended: float | None = None,
) -> str:
    """The case record as plain text."""
    stamp = "%Y-%m-%d %H:%M:%S %z"
    size = bmap.end
    finished = bmap.size_of(FINISHED)
    bad = [(pos, n) for pos, n, st in bmap if st == BAD_SECTOR]
    lines = [
        f"ddfs case record (ddfs {__version__}, GNU ddrescue {DDRESCUE_VERSION} map format)",
        f"Command line: {command_line}",
        f"Image:        {image}",
        f"Mapfile:      {mapfile}",
    ]
    if identity:
        lines.append(f"Source:       {identity.removeprefix('# ').strip()}")
    if started is not None:
        lines.append(f"Started:      {time.strftime(stamp, time.localtime(started))}")
    if ended is not None:
        lines.append(f"Ended:        {time.strftime(stamp, time.localtime(ended))}")
    lines += [
        f"Size:         {size} bytes",
        f"Rescued:      {finished} bytes ({100 * finished / size if size else 100:.2f} %)",
        f"Not rescued:  {size - finished} bytes, hashed as the image holds them (zeros)",
        f"Bad areas:    {len(bad)} ({sum(n for _, n in bad)} bytes)",
    ]
    lines += [f"  0x{pos:010X}  {n} bytes" for pos, n in bad[:1000]]
    if len(bad) > 1000:
        lines.append(f"  ... {len(bad) - 1000} more (see the mapfile)")
    lines.append("Hashes:")
    for h in hashes:
        where = f"bytes {h.start}-{h.start + h.size - 1}" if h.size else "empty"
        lines.append(f"  {h.name} ({where})")
        lines += [f"    {a}: {d}" for a, d in h.digests.items()]
    return "\n".join(lines) + "\n"
