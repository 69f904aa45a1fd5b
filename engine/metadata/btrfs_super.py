"""btrfs superblocks and the chunk map, for :mod:`engine.metadata.btrfs`.

A btrfs device has a 4 KiB superblock at 64 KiB and mirrors at 64 MiB and 256 GiB (those that
fit). Every tree pointer in it and in the trees is a *logical* address; the chunk map turns one
into the physical places of its copies on this device. The map is bootstrapped from the
superblock's ``sys_chunk_array`` (the SYSTEM chunks, where the chunk tree lives) and completed
from the chunk tree's CHUNK_ITEMs. Profiles whose copies are whole (single, DUP, RAID1, RAID1C3/4)
and the striped RAID0/RAID10 are mapped; RAID5/6 are not (the planner notes them). Only stripes
on this device (the superblock's ``dev_item.devid``) are returned.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from engine.metadata.checksums import crc32c
from engine.metadata.signatures import BTRFS_MAGIC, BTRFS_SUPER_OFFSETS, BTRFS_SUPER_SIZE, Readable

CSUM_SIZE = 32  # the checksum field that starts the superblock and every tree node
CSUM_CRC32C = 0
INCOMPAT_METADATA_UUID = 1 << 10
SYS_CHUNK_ARRAY = 0x32B  # offset of sys_chunk_array in the superblock
SYS_CHUNK_ARRAY_MAX = 2048
SUPER_ROOTS, BACKUP_SIZE = 0xB2B, 168  # super_roots: 4 btrfs_root_backup after the array
KEY_SIZE = 17  # objectid u64, type u8, offset u64
CHUNK_ITEM_KEY = 228
CHUNK_HEADER = 48  # btrfs_chunk up to its first stripe
STRIPE_SIZE = 32  # devid u64, offset u64, dev_uuid[16]

# block group type and profile bits (btrfs_chunk.type)
BG_DATA, BG_SYSTEM, BG_METADATA = 1, 2, 4
RAID0, RAID1, DUP, RAID10, RAID5, RAID6 = 8, 16, 32, 64, 128, 256  # RAID1C3/4: 512, 1024
MAX_STRIPES = 256  # sanity bound for a corrupt chunk item
MAX_MAP = 1 << 30  # most mapped at once (extents are at most 128 MiB, nodes 64 KiB)


def csum_ok(raw: bytes) -> bool:
    """The crc32c btrfs stores in the first 4 bytes of a superblock or node (little-endian,
    over everything after the 32-byte checksum field, seeded and finished with ~0)."""
    (stored,) = struct.unpack_from("<I", raw, 0)
    return stored == crc32c(0xFFFFFFFF, raw[CSUM_SIZE:]) ^ 0xFFFFFFFF


@dataclass
class Super:
    """What the planner needs of one superblock copy."""

    offset: int  # where this copy was read
    fsid: bytes  # what tree node headers carry: metadata_uuid with that feature, else fsid
    generation: int
    root: int
    chunk_root: int
    log_root: int
    total_bytes: int
    num_devices: int
    sectorsize: int
    nodesize: int
    csum_type: int
    root_level: int
    chunk_root_level: int
    log_root_level: int
    devid: int
    sys_chunk_array: bytes
    backup_roots: tuple[int, ...] = ()  # the tree roots of the last 4 commits (super_roots)


def parse_super(raw: bytes | None, offset: int) -> Super | None:
    """The superblock copy at ``offset``, or None if it is not a valid one (magic, its own
    position, checksum when crc32c, sizes)."""
    if raw is None or len(raw) < BTRFS_SUPER_SIZE or raw[0x40:0x48] != BTRFS_MAGIC:
        return None
    (bytenr,) = struct.unpack_from("<Q", raw, 0x30)
    gen, root, chunk_root, log_root = struct.unpack_from("<4Q", raw, 0x48)
    total, _used, _rootdir, ndev = struct.unpack_from("<4Q", raw, 0x70)
    sectorsize, nodesize, _leaf, _stripe, sys_size = struct.unpack_from("<5I", raw, 0x90)
    (incompat,) = struct.unpack_from("<Q", raw, 0xBC)
    csum_type, root_level, chunk_level, log_level = struct.unpack_from("<H3B", raw, 0xC4)
    (devid,) = struct.unpack_from("<Q", raw, 0xC9)
    if bytenr != offset or (csum_type == CSUM_CRC32C and not csum_ok(raw)):
        return None
    if not (_pow2(sectorsize) and 4096 <= sectorsize <= 65536):
        return None
    if not (_pow2(nodesize) and sectorsize <= nodesize <= 65536):
        return None
    if sys_size > SYS_CHUNK_ARRAY_MAX or max(root_level, chunk_level, log_level) >= 8:
        return None
    fsid = raw[0x23B:0x24B] if incompat & INCOMPAT_METADATA_UUID else raw[0x20:0x30]
    backups = tuple(  # root, chunk, extent, fs, device and checksum tree of each backup
        struct.unpack_from("<Q", raw, SUPER_ROOTS + i * BACKUP_SIZE + 16 * j)[0]
        for i in range(4)
        for j in range(6)
    )
    return Super(
        offset, bytes(fsid), gen, root, chunk_root, log_root, total, ndev, sectorsize, nodesize,
        csum_type, root_level, chunk_level, log_level, devid,
        bytes(raw[SYS_CHUNK_ARRAY : SYS_CHUNK_ARRAY + sys_size]), backups,
    )  # fmt: skip


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def find_super(vol: Readable) -> Super | None:
    """The first valid copy: the primary, else the mirrors in order. Reads what
    :func:`engine.metadata.signatures.btrfs` reads, in the same order, until one is valid."""
    for off in BTRFS_SUPER_OFFSETS:
        if off + BTRFS_SUPER_SIZE <= vol.size:
            sb = parse_super(vol.read(off, BTRFS_SUPER_SIZE), off)
            if sb is not None:
                return sb
    return None


# ------------------------------------------------------------------ chunks
@dataclass(frozen=True)
class Chunk:
    """One chunk: ``length`` logical bytes from ``logical``, on ``stripes`` (devid, offset)."""

    logical: int
    length: int
    type: int
    stripe_len: int
    sub_stripes: int
    stripes: tuple[tuple[int, int], ...]

    @property
    def striped(self) -> bool:
        return bool(self.type & (RAID0 | RAID10))

    @property
    def parity(self) -> bool:
        return bool(self.type & (RAID5 | RAID6))


def parse_chunk(logical: int, raw: bytes, at: int = 0) -> tuple[Chunk, int] | None:
    """The chunk item at ``raw[at:]`` and its size in bytes, or None if it is not sane."""
    if at + CHUNK_HEADER > len(raw):
        return None
    length, _owner, stripe_len, ctype = struct.unpack_from("<4Q", raw, at)
    nstripes, sub = struct.unpack_from("<2H", raw, at + 44)
    size = CHUNK_HEADER + nstripes * STRIPE_SIZE
    if not 0 < nstripes <= MAX_STRIPES or at + size > len(raw) or length <= 0:
        return None
    if ctype & (RAID0 | RAID10) and not (_pow2(stripe_len) and stripe_len >= 4096):
        return None
    stripes = tuple(
        struct.unpack_from("<2Q", raw, at + CHUNK_HEADER + i * STRIPE_SIZE) for i in range(nstripes)
    )
    return Chunk(logical, length, ctype, stripe_len, max(1, sub), stripes), size


def sys_chunks(array: bytes) -> list[Chunk]:
    """The chunks of the superblock's ``sys_chunk_array`` (key, chunk item, key, ...)."""
    out: list[Chunk] = []
    at = 0
    while at + KEY_SIZE + CHUNK_HEADER <= len(array):
        _oid, ktype, logical = struct.unpack_from("<QBQ", array, at)
        if ktype != CHUNK_ITEM_KEY:
            break
        parsed = parse_chunk(logical, array, at + KEY_SIZE)
        if parsed is None:
            break
        out.append(parsed[0])
        at += KEY_SIZE + parsed[1]
    return out


Segments = list[tuple[int, int]]  # (physical position, length) pieces of one copy


class ChunkMap:
    """Logical -> physical on one device (``devid``)."""

    def __init__(self, devid: int) -> None:
        self.devid = devid
        self.starts: list[int] = []
        self.chunks: list[Chunk] = []

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunk: Chunk) -> bool:
        """Add a chunk; False if it is already known or overlaps a known one."""
        i = bisect.bisect_right(self.starts, chunk.logical)
        if i > 0 and self.chunks[i - 1].logical + self.chunks[i - 1].length > chunk.logical:
            return False
        if i < len(self.chunks) and chunk.logical + chunk.length > self.starts[i]:
            return False
        self.starts.insert(i, chunk.logical)
        self.chunks.insert(i, chunk)
        return True

    def find(self, logical: int) -> Chunk | None:
        i = bisect.bisect_right(self.starts, logical) - 1
        if i >= 0 and logical < self.chunks[i].logical + self.chunks[i].length:
            return self.chunks[i]
        return None

    def copies(self, logical: int, size: int) -> list[Segments]:
        """The copies of ``[logical, logical+size)`` on this device, the first copy first.

        Empty when unmapped or in a RAID5/6 chunk; the range is clipped to its chunk (extents
        and nodes never cross one). A striped copy may have pieces on other devices left out.
        """
        chunk = self.find(logical)
        if chunk is None or chunk.parity or size <= 0:
            return []
        off = logical - chunk.logical
        size = min(size, chunk.length - off, MAX_MAP)
        if not chunk.striped:
            return [
                [(dev_off + off, size)] for devid, dev_off in chunk.stripes if devid == self.devid
            ]
        sub = chunk.sub_stripes if chunk.type & RAID10 else 1
        factor = max(1, len(chunk.stripes) // sub)
        copies: list[Segments] = [[] for _ in range(sub)]
        end = off + size
        while off < end:
            nr, within = divmod(off, chunk.stripe_len)
            row, col = divmod(nr, factor)
            n = min(end - off, chunk.stripe_len - within)
            for k in range(sub):
                devid, dev_off = chunk.stripes[min(col * sub + k, len(chunk.stripes) - 1)]
                if devid == self.devid:
                    copies[k].append((dev_off + row * chunk.stripe_len + within, n))
            off += n
        return [c for c in copies if c]
