"""btrfs for the metadata planner: superblocks, chunk tree, root tree and every tree it lists,
and the file data the fs trees point to.

The walk is what ``btrfs check`` and a mount read: the superblock (P0; its mirrors at 64 MiB
and 256 GiB P3) bootstraps the chunk map from its ``sys_chunk_array``; the chunk tree (P1)
completes the map; the root tree (P1) lists the other trees, whose nodes are P2: extent, device,
checksum, free space, UUID, quota and block group trees, and the fs trees (the default
subvolume, every other subvolume and snapshot) with their inodes and directories; the log tree
(P2) when the superblock has one. Second copies of metadata (DUP, RAID1) are P3, as are the
root nodes of the superblock's backup roots (older commits) the walk did not reach; the data
extents the fs trees and log trees point to (EXTENT_DATA, regular and preallocated) P4, first
copy only. Nodes are verified (see :mod:`engine.metadata.btrfs_tree`). An unreadable or invalid
primary superblock leads to the mirror at 64 MiB, then 256 GiB, with a note. Only this device's
stripes are planned: a multi-device volume is planned as far as this device holds it.
"""

from __future__ import annotations

import struct

from engine.metadata.btrfs_super import (
    CHUNK_ITEM_KEY,
    ChunkMap,
    Super,
    find_super,
    parse_chunk,
    parse_super,
    sys_chunks,
)
from engine.metadata.btrfs_tree import Node, Trees
from engine.metadata.signatures import BTRFS_SUPER_OFFSETS, BTRFS_SUPER_SIZE
from engine.metadata.volume import P0, P1, P2, P3, P4, Volume

NAME = "btrfs"

# tree (root) objectids
ROOT_TREE, EXTENT_TREE, CHUNK_TREE, DEV_TREE, FS_TREE = 1, 2, 3, 4, 5
CSUM_TREE, QUOTA_TREE, UUID_TREE, FREE_SPACE_TREE, BLOCK_GROUP_TREE = 7, 8, 9, 10, 11
FIRST_FREE, LAST_FREE = 256, (1 << 64) - 256  # subvolume ids
TREE_NAMES = {
    EXTENT_TREE: "extent tree",
    DEV_TREE: "device tree",
    CSUM_TREE: "checksum tree",
    QUOTA_TREE: "quota tree",
    UUID_TREE: "UUID tree",
    FREE_SPACE_TREE: "free space tree",
    BLOCK_GROUP_TREE: "block group tree",
    (1 << 64) - 6: "log tree",
    (1 << 64) - 8: "relocation tree",
    (1 << 64) - 9: "data relocation tree",
}
# item types
INODE_ITEM, ROOT_ITEM, EXTENT_DATA = 1, 132, 108
ROOT_ITEM_SIZE = 239  # up to and including ``level`` (older root items are no shorter)
FILE_EXTENT_REG, FILE_EXTENT_PREALLOC = 1, 2
MAX_EXTENT = 128 << 20  # BTRFS_MAX_EXTENT_SIZE: a longer data extent is corrupt
S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000


def probe(vol: Volume) -> bool:
    """A valid superblock (or mirror); reads what the signature test reads while none is."""
    return find_super(vol) is not None


class BtrfsPlanner:
    """One walk of one btrfs volume."""

    def __init__(self, vol: Volume, sb: Super) -> None:
        self.vol = vol
        self.sb = sb
        self.chunks = ChunkMap(sb.devid)
        self.trees = Trees(vol, sb, self.chunks)
        self.roots: dict[tuple[int, int], tuple[int, int]] = {}  # key -> (root address, level)
        self.extents: set[int] = set()  # data extents (logical) planned already
        self.data: list[tuple[int, int]] = []  # their physical runs, planned at the end

    # -------------------------------------------------------------- layout
    def plan_supers(self) -> None:
        for i, off in enumerate(BTRFS_SUPER_OFFSETS):
            if off + BTRFS_SUPER_SIZE <= self.vol.size:
                what = "btrfs superblock" if i == 0 else f"btrfs superblock mirror {i}"
                self.vol.add(off, BTRFS_SUPER_SIZE, P0 if i == 0 else P3, what)

    def plan_chunks(self) -> bool:
        """The chunk map: the superblock's SYSTEM chunks, then the chunk tree."""
        for chunk in sys_chunks(self.sb.sys_chunk_array):
            self.chunks.add(chunk)
        if not self.chunks:
            self.vol.plan.note("btrfs: no chunk in the superblock's sys_chunk_array")
            return False
        sb = self.sb
        self.trees.walk(sb.chunk_root, sb.chunk_root_level, P1, "btrfs chunk tree", self.chunk_leaf)
        self.vol.plan.count("btrfs:chunks", len(self.chunks))
        for chunk in self.chunks.chunks:
            if chunk.parity:
                self.vol.plan.note(
                    f"btrfs: chunk at logical {chunk.logical} is RAID5/6, which is not mapped"
                )
            elif not any(devid == self.sb.devid for devid, _ in chunk.stripes):
                self.vol.plan.count("btrfs:chunks on other devices")
        if self.sb.num_devices > 1:
            self.vol.plan.note(
                f"btrfs: {self.sb.num_devices} devices; only device {self.sb.devid}'s "
                "stripes are planned"
            )
        return True

    def chunk_leaf(self, node: Node) -> tuple[int, int]:
        for _oid, ktype, koff, data in node.items():
            if ktype == CHUNK_ITEM_KEY:
                parsed = parse_chunk(koff, data)
                if parsed is not None:
                    self.chunks.add(parsed[0])
        return 0, 0

    # -------------------------------------------------------------- the root tree
    def root_leaf(self, node: Node) -> tuple[int, int]:
        """ROOT_ITEMs (keyed by objectid and offset: log and relocation trees share an
        objectid), and the data of the free space cache (v1) files the root tree's inodes
        point to."""
        for oid, ktype, koff, data in node.items():
            if ktype == ROOT_ITEM and len(data) >= ROOT_ITEM_SIZE:
                (bytenr,) = struct.unpack_from("<Q", data, 176)
                self.roots[oid, koff] = (bytenr, data[238])
            elif ktype == EXTENT_DATA:
                self.file_extent(data, P2, "btrfs free space cache")
        return 0, 0

    def plan_trees(self) -> None:
        sb, plan = self.sb, self.vol.plan
        self.trees.walk(sb.root, sb.root_level, P1, "btrfs root tree", self.root_leaf)
        files = dirs = 0
        for oid, koff in sorted(self.roots, key=lambda k: (is_subvolume(k[0]), k)):
            bytenr, level = self.roots[oid, koff]
            if is_subvolume(oid):
                what = "btrfs fs tree" if oid == FS_TREE else f"btrfs subvolume {oid}"
                f, d = self.trees.walk(bytenr, level, P2, what, self.fs_leaf)
                files, dirs = files + f, dirs + d
                plan.count("btrfs:subvolumes")
            else:
                name = TREE_NAMES.get(oid, f"tree {oid}")
                data_tree = oid in ((1 << 64) - 8, (1 << 64) - 9)
                leaf = self.data_leaf if data_tree else self.other_leaf
                self.trees.walk(bytenr, level, P2, f"btrfs {name}", leaf)
        plan.count("btrfs:files", files)
        plan.count("btrfs:directories", dirs)
        if not any(oid == FS_TREE for oid, _ in self.roots):
            plan.note("btrfs: the root tree lists no fs tree (subvolume 5)")

    def plan_backup_roots(self) -> None:
        """The root nodes of the superblock's backup roots (older commits, what
        ``-o usebackuproot`` and ``btrfs restore -t`` start from) that the walk did not reach:
        P3, not read."""
        for logical in sorted(set(self.sb.backup_roots)):
            if logical and logical not in self.trees.done:
                self.trees.plan_node(logical, P3, "btrfs backup root")

    def plan_log(self) -> None:
        """The log root tree and the per-subvolume log trees it lists (replayed at mount)."""
        if not self.sb.log_root:
            return
        self.roots = {}
        sb = self.sb
        self.trees.walk(sb.log_root, sb.log_root_level, P2, "btrfs log root tree", self.root_leaf)
        for bytenr, level in self.roots.values():
            self.trees.walk(bytenr, level, P2, "btrfs log tree", self.data_leaf)

    # -------------------------------------------------------------- leaves
    def other_leaf(self, node: Node) -> tuple[int, int]:
        return 0, 0

    def data_leaf(self, node: Node) -> tuple[int, int]:
        for _oid, ktype, _koff, data in node.items():
            if ktype == EXTENT_DATA:
                self.file_extent(data, P4, "btrfs file data")
        return 0, 0

    def fs_leaf(self, node: Node) -> tuple[int, int]:
        """Inodes (counted) and file extents (planned P4) of an fs tree leaf."""
        files = dirs = 0
        for _oid, ktype, _koff, data in node.items():
            if ktype == INODE_ITEM and len(data) >= 56:
                (mode,) = struct.unpack_from("<I", data, 52)
                kind = mode & S_IFMT
                files += kind == S_IFREG
                dirs += kind == S_IFDIR
            elif ktype == EXTENT_DATA:
                self.file_extent(data, P4, "btrfs file data")
        return files, dirs

    def file_extent(self, data: bytes, tier: int, what: str) -> None:
        """A regular or preallocated extent's first copy (once per extent)."""
        if len(data) < 53 or data[20] not in (FILE_EXTENT_REG, FILE_EXTENT_PREALLOC):
            return
        disk_bytenr, disk_bytes = struct.unpack_from("<2Q", data, 21)
        if disk_bytenr == 0 or disk_bytes <= 0 or disk_bytenr in self.extents:
            return  # a hole, or shared (reflinks, snapshots)
        if disk_bytes > MAX_EXTENT:
            self.vol.plan.count("btrfs:bad extents")
            return
        self.extents.add(disk_bytenr)
        copies = self.chunks.copies(disk_bytenr, disk_bytes)
        if not copies:
            self.vol.plan.count("btrfs:unmapped extents")
            return
        if tier == P4:
            self.data.extend(copies[0])
        else:
            for pos, n in copies[0]:
                self.vol.add(pos, n, tier, what)

    def plan_data(self) -> None:
        """The data runs, merged (adjacent extents are one area)."""
        run_start = run_end = -1
        for pos, n in sorted(self.data):
            if pos <= run_end:
                run_end = max(run_end, pos + n)
                continue
            if run_end > run_start:
                self.vol.add(run_start, run_end - run_start, P4, "btrfs file data")
            run_start, run_end = pos, pos + n
        if run_end > run_start:
            self.vol.add(run_start, run_end - run_start, P4, "btrfs file data")
        plan = self.vol.plan
        plan.count("btrfs:data extents", len(self.extents))
        for key, why in (("unmapped", "in no mapped chunk"), ("bad", "longer than 128 MiB")):
            if plan.counts.get(f"btrfs:{key} extents"):
                n = plan.counts[f"btrfs:{key} extents"]
                plan.note(f"btrfs: {n} data extents {why} (not planned)")


def is_subvolume(oid: int) -> bool:
    """The fs tree (5) or a subvolume or snapshot (256 ..)."""
    return oid == FS_TREE or FIRST_FREE <= oid < LAST_FREE


def choose_super(vol: Volume) -> Super | None:
    """The primary superblock, else a mirror (with a note)."""
    primary = BTRFS_SUPER_OFFSETS[0]
    raw = vol.read(primary, BTRFS_SUPER_SIZE)
    sb = parse_super(raw, primary)
    if sb is not None:
        return sb
    sb = find_super(vol)
    why = "unreadable" if raw is None else "invalid (magic, position or checksum)"
    if sb is None:
        vol.plan.note(f"btrfs: primary superblock {why} and no valid mirror")
        return None
    vol.plan.note(f"btrfs: primary superblock {why}; using the mirror at {sb.offset}")
    return sb


def plan(vol: Volume) -> None:
    sb = choose_super(vol)
    if sb is None:
        vol.add(BTRFS_SUPER_OFFSETS[0], BTRFS_SUPER_SIZE, P0, "btrfs superblock")
        return
    planner = BtrfsPlanner(vol, sb)
    planner.plan_supers()
    if not planner.plan_chunks():
        return
    planner.plan_trees()
    planner.plan_log()
    planner.plan_backup_roots()
    planner.plan_data()
