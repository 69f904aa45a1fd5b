"""How a read of the live image is answered (async, trio; no FUSE here).

Finished data is read from OUTFILE in a worker thread (its own limiter; never the source). Data
not yet finished becomes an urgent request to the engine thread, awaited up to the read timeout;
afterwards whatever is finished is served, and the rest follows the ``--unreadable`` policy:
``eio`` (as the disk would) or ``zero`` (for tools that give up at the first EIO). A request that
times out stays queued: the engine keeps going on it while the caller has its answer.
"""

from __future__ import annotations

import os

import trio

from ddfs.view import SequentialDetector, View
from engine.scheduler import READAHEAD, URGENT


class Unreadable(Exception):
    """The range holds bad or unrescued data and the policy is EIO."""


class ImageReader:
    """Reads of the image for the FUSE layer."""

    def __init__(
        self,
        view: View,
        output_path: str,
        offset: int = 0,
        timeout: float = 5.0,
        unreadable: str = "eio",
        readahead: int = 1 << 20,
    ) -> None:
        self.view = view
        self.rescuer = view.rescuer
        self.scheduler = view.scheduler
        self.fd = os.open(output_path, os.O_RDONLY | os.O_CLOEXEC)
        self.offset = offset  # output position = input position + offset
        self.timeout = timeout
        self.unreadable = unreadable
        self.readahead = readahead
        self.limiter = trio.CapacityLimiter(8)

    def close(self) -> None:
        os.close(self.fd)

    def detector(self) -> SequentialDetector:
        return SequentialDetector(self.readahead)

    async def read(self, pos: int, size: int, seq: SequentialDetector | None = None) -> bytes:
        """The bytes of the image at ``[pos, pos+size)``.

        Raises:
            Unreadable: part of the range is bad or could not be rescued in time (policy eio).
        """
        if size <= 0:
            return b""
        if seq is not None:
            ahead = seq.note(pos, size)
            if ahead is not None:
                self._read_ahead(*ahead)
        if not self.rescuer.is_finished(pos, size):
            await self._rescue_now(pos, size)
            if not self.rescuer.is_finished(pos, size):
                if self.unreadable != "zero":
                    self.view.ondemand_eio += 1
                    raise Unreadable(f"[{pos}, {pos + size}) not rescued")
                return await self._read_zero_filled(pos, size)
        return await self._pread(pos, size)

    async def _pread(self, pos: int, size: int) -> bytes:
        data = await trio.to_thread.run_sync(
            os.pread, self.fd, size, pos + self.offset, limiter=self.limiter
        )
        if len(data) < size:  # the output ends before the input: unwritten means zeros
            data += bytes(size - len(data))
        return data

    async def _read_zero_filled(self, pos: int, size: int) -> bytes:
        data = bytearray(await self._pread(pos, size))
        with self.rescuer.lock:
            p = pos
            while True:
                found = self.rescuer.bmap.find_forward(p, "?*/-", pos + size)
                if found is None:
                    break
                data[found[0] - pos : found[1] - pos] = bytes(found[1] - found[0])
                p = found[1]
        return bytes(data)

    async def rescue_range(self, pos: int, size: int) -> bool:
        """Rescue ``[pos, pos+size)`` ahead of the schedule; True when it is all finished."""
        if not self.rescuer.is_finished(pos, size):
            await self._rescue_now(pos, size)
        return self.rescuer.is_finished(pos, size)

    async def _rescue_now(self, pos: int, size: int) -> None:
        self.view.ondemand_reads += 1
        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:
            try:
                token.run_sync_soon(event.set)
            except trio.RunFinishedError:
                pass

        self.scheduler.submit(pos, size, URGENT, wake)
        with trio.move_on_after(self.timeout) as scope:
            await event.wait()
        if scope.cancelled_caught:
            self.view.ondemand_timeouts += 1

    def _read_ahead(self, pos: int, size: int) -> None:
        end = min(pos + size, self.view.image_size)
        if end > pos and not self.rescuer.is_finished(pos, end - pos):
            self.view.readahead_requests += 1
            self.scheduler.submit(pos, end - pos, READAHEAD)
