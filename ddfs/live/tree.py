"""The mounted tree as a pure model: which files there are, their sizes, and their text content.

``image`` is the whole input, ``p1``, ``p2``, ... are the partitions found in it, ``mapfile`` is
the live map in ddrescue's format and ``status.json`` the progress. Nothing here touches FUSE or
does I/O on the source: the adapter (``fusefs.py``) asks this model, and the reader
(``reader.py``) fetches bytes. With an overlay the image and partition files are writable
(mode 0644); ``status.json`` then shows the overlay's figures, and with the repair view its
substitutions.
"""

from __future__ import annotations

import json
import stat
import time
from collections import deque
from dataclasses import dataclass

from ddfs.live.overlay import Overlay
from ddfs.live.repairview import RepairView
from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED
from engine.map.mapfile import PHASE_NAMES, mapfile_text
from engine.metadata.partitions import Partition
from engine.metadata.through import tier_progress
from engine.metadata.volume import Plan
from engine.ondemand.thread import Scheduler

ROOT_INODE = 1
IMAGE_INODE = 2
MAPFILE_INODE = 3
STATUS_INODE = 4
PARTITION_BASE = 100


@dataclass(frozen=True)
class Node:
    """One file of the mount: a window ``[offset, offset+size)`` of the image, or a text file."""

    inode: int
    name: str
    kind: str  # "image", "partition", "mapfile", "status"
    offset: int = 0
    size: int = 0
    writable: bool = False  # an image or partition file of a mount with an overlay

    @property
    def is_data(self) -> bool:
        return self.kind in ("image", "partition")

    @property
    def mode(self) -> int:
        return stat.S_IFREG | (0o644 if self.writable and self.is_data else 0o444)


class SequentialDetector:
    """Spots a reader going forward through a file and says what to read ahead of it."""

    def __init__(self, window: int = 1 << 20, trigger: int = 2) -> None:
        self.window = window
        self.trigger = trigger
        self._next = -1
        self._run = 0
        self._ahead_to = 0

    def note(self, pos: int, size: int) -> tuple[int, int] | None:
        """Record a read of ``[pos, pos+size)``; return a range to read ahead, if any."""
        self._run = self._run + 1 if pos == self._next else 0
        self._next = pos + size
        if self._run + 1 < self.trigger:
            self._ahead_to = 0
            return None
        start = max(self._next, self._ahead_to)
        end = self._next + self.window
        if end - start < self.window // 2:
            return None
        self._ahead_to = end
        return start, end - start


class View:
    """The tree of a live mount over a running :class:`Scheduler`."""

    def __init__(self, scheduler: Scheduler, image_size: int, writable: bool = False) -> None:
        self.scheduler = scheduler
        self.writable = writable
        self.overlay: Overlay | None = None  # shown in status.json
        self.repair: RepairView | None = None
        self.rescuer = scheduler.rescuer
        self.image_size = image_size
        self.started = time.time()
        self.partitions: list[Partition] = []
        self.plan: Plan | None = None  # metadata first, once planned
        self._samples: deque[tuple[float, int]] = deque()
        self.partition_note = "not read yet"
        self.ondemand_reads = 0
        self.ondemand_timeouts = 0
        self.ondemand_eio = 0
        self.readahead_requests = 0
        self._nodes: dict[int, Node] = {}
        self._names: dict[str, int] = {}
        for node in (
            Node(IMAGE_INODE, "image", "image", 0, image_size, writable),
            Node(MAPFILE_INODE, "mapfile", "mapfile"),
            Node(STATUS_INODE, "status.json", "status"),
        ):
            self._add(node)

    def _add(self, node: Node) -> None:
        self._nodes[node.inode] = node
        self._names[node.name] = node.inode

    # ------------------------------------------------------------------ the tree
    def set_partitions(self, parts: list[Partition]) -> None:
        """Show one file per partition (``p<number>``)."""
        for inode in [i for i, n in self._nodes.items() if n.kind == "partition"]:
            del self._names[self._nodes.pop(inode).name]
        self.partitions = parts
        for p in parts:
            end = min(p.end, self.image_size)
            if end > p.start:
                self._add(
                    Node(
                        PARTITION_BASE + p.number,
                        f"p{p.number}",
                        "partition",
                        p.start,
                        end - p.start,
                        self.writable,
                    )
                )

    def node(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def lookup(self, name: str) -> Node | None:
        inode = self._names.get(name)
        return self._nodes[inode] if inode is not None else None

    def listing(self) -> list[Node]:
        return sorted(self._nodes.values(), key=lambda n: n.inode)

    def disk_range(self, node: Node, off: int, size: int) -> tuple[int, int]:
        """The image range behind ``size`` bytes at ``off`` of ``node``, clipped at its end."""
        if off >= node.size:
            return node.offset + node.size, 0
        return node.offset + off, min(size, node.size - off)

    # ------------------------------------------------------------------ text files
    def mapfile_text(self) -> bytes:
        """A consistent snapshot of the live map in ddrescue's format."""
        r = self.rescuer
        with r.lock:
            text = mapfile_text(r.bmap, r.current_pos, r.status, r.current_pass, r.header_text())
        return text.encode("latin-1", "replace")

    def status(self) -> dict[str, object]:
        r = self.rescuer
        s = self.scheduler
        with r.lock:
            sizes = {
                "non_tried": r.bmap.size_of(NON_TRIED),
                "non_trimmed": r.bmap.size_of(NON_TRIMMED),
                "non_scraped": r.bmap.size_of(NON_SCRAPED),
                "bad_sector": r.bmap.size_of(BAD_SECTOR),
                "finished": r.bmap.size_of(FINISHED),
            }
            bad_areas = r.bmap.count_of(BAD_SECTOR)
        elapsed = max(time.time() - r.start_time, 1e-9)
        if s.background_done:
            phase = "stopped" if s.outcome is not None else "finished"
        else:
            phase = PHASE_NAMES.get(r.status, r.status)
        return {
            "phase": phase,
            "message": r.message,
            "pass": r.current_pass,
            "current_pos": r.current_pos,
            "size": self.image_size,
            "bytes": sizes,
            "bad_areas": bad_areas,
            "read_errors": r.read_errors,
            "reads": r.reads,
            "average_rate": r.rescued_this_run / elapsed,
            "current_rate": self._current_rate(),
            "error_read_seconds": r.measured_rates().error_read_seconds,
            "error_bytes": r.error_bytes,
            "run_time": elapsed,
            "time_since_last_good_read": (
                None if r.last_good_read is None else time.time() - r.last_good_read
            ),
            "stop_reason": None if s.outcome is None else str(s.outcome),
            "partitions": [
                {"name": f"p{p.number}", "start": p.start, "size": p.size, "type": p.type}
                for p in self.partitions
            ],
            "partition_table": self.partition_note,
            "tiers": self.tier_progress(),
            "ondemand": {
                "reads": self.ondemand_reads,
                "timeouts": self.ondemand_timeouts,
                "eio": self.ondemand_eio,
                "readahead_requests": self.readahead_requests,
                "served": s.served,
                "serve_seconds": s.serve_seconds,
                "queue": [
                    {"priority": pr, "pos": pos, "size": size, "age": age}
                    for pr, pos, size, age in s.pending()
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

    def _current_rate(self) -> float:
        """Bytes rescued per second over the last few seconds of status requests."""
        now = time.monotonic()
        self._samples.append((now, self.rescuer.rescued_this_run))
        while len(self._samples) > 2 and now - self._samples[1][0] >= 5.0:
            self._samples.popleft()
        t0, b0 = self._samples[0]
        return (self._samples[-1][1] - b0) / (now - t0) if now > t0 else 0.0

    def tier_progress(self) -> list[dict[str, object]]:
        """Per tier of the metadata plan: its size and how much of it is finished."""
        return [] if self.plan is None else tier_progress(self.plan, self.rescuer)

    def status_text(self) -> bytes:
        return (json.dumps(self.status(), indent=2) + "\n").encode()

    def text_of(self, node: Node) -> bytes:
        return self.mapfile_text() if node.kind == "mapfile" else self.status_text()
