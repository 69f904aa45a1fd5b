"""The live mount's model: the pure tree of files, with the engine's facade behind it.

:class:`View` is what the FUSE adapter (``fusefs.py``) and the reader (``reader.py``) talk to:
the tree (:mod:`ddfs.live.tree`), the text of ``mapfile`` and ``status.json`` (from the
facade's snapshots, :class:`engine.ondemand.facade.LiveRescue`), the counters of the on-demand
reads, and the overlay's and repair view's figures for ``status.json``.
"""

from __future__ import annotations

import json

from ddfs.live.overlay import Overlay
from ddfs.live.repairview import RepairView
from ddfs.live.tree import Node, Tree
from engine.metadata.partitions import Partition
from engine.metadata.volume import Plan
from engine.ondemand.facade import LiveRescue


class View:
    """The tree of a live mount over a running rescue."""

    def __init__(self, live: LiveRescue, image_size: int, writable: bool = False) -> None:
        self.live = live
        self.tree = Tree(image_size, writable)
        self.overlay: Overlay | None = None  # shown in status.json
        self.repair: RepairView | None = None
        self.partition_note = "not read yet"
        self.ondemand_reads = 0
        self.ondemand_timeouts = 0
        self.ondemand_eio = 0
        self.readahead_requests = 0

    # ------------------------------------------------------------------ the tree
    @property
    def image_size(self) -> int:
        return self.tree.image_size

    @property
    def writable(self) -> bool:
        return self.tree.writable

    @property
    def partitions(self) -> list[Partition]:
        return self.tree.partitions

    @property
    def plan(self) -> Plan | None:
        return self.live.plan

    def set_partitions(self, parts: list[Partition]) -> None:
        self.tree.set_partitions(parts)

    def node(self, inode: int) -> Node | None:
        return self.tree.node(inode)

    def lookup(self, name: str) -> Node | None:
        return self.tree.lookup(name)

    def listing(self) -> list[Node]:
        return self.tree.listing()

    def disk_range(self, node: Node, off: int, size: int) -> tuple[int, int]:
        return self.tree.disk_range(node, off, size)

    # ------------------------------------------------------------------ text files
    def mapfile_text(self) -> bytes:
        """A consistent snapshot of the live map in ddrescue's format."""
        return self.live.map_text()

    def status(self) -> dict[str, object]:
        live = self.live
        served, serve_seconds = live.served()
        return {
            **live.engine_status(),
            "partitions": [
                {"name": p.file_name, "start": p.start, "size": p.size, "type": p.type}
                for p in self.partitions
            ],
            "partition_table": self.partition_note,
            "tiers": self.tier_progress(),
            "first": self.live.first_progress(),
            "ondemand": {
                "reads": self.ondemand_reads,
                "timeouts": self.ondemand_timeouts,
                "eio": self.ondemand_eio,
                "readahead_requests": self.readahead_requests,
                "served": served,
                "serve_seconds": serve_seconds,
                "queue": [
                    {"priority": pr, "pos": pos, "size": size, "age": age}
                    for pr, pos, size, age in live.pending()
                ],
            },
            **self.repair_status(),
        }

    def repair_status(self) -> dict[str, object]:
        """The overlay's figures and the repair view's substitutions (when they are on)."""
        out: dict[str, object] = {}
        if self.overlay is not None:
            out["overlay"] = self.overlay.stats()
        if self.repair is not None:
            out["repair_view"] = self.repair.status()
        return out

    def tier_progress(self) -> list[dict[str, object]]:
        """Per tier of the metadata plan: its size and how much of it is finished."""
        return self.live.tier_progress()

    def status_text(self) -> bytes:
        return (json.dumps(self.status(), indent=2) + "\n").encode()

    def text_of(self, node: Node) -> bytes:
        return self.mapfile_text() if node.kind == "mapfile" else self.status_text()
