"""Fill mode (``-F TYPES``): write the input's first cluster over the map blocks of some statuses.

As in GNU ddrescue 1.27 (docs/ddrescue-behaviour.md §3.4): the first cluster of the input is
read once (a short input is repeated to fill it) and written over every map block whose status
is in TYPES, inside the domain, one cluster at a time from the block's start. With ``l`` in
TYPES every sector starts with a location header. Only the status line of the map changes:
``F`` with ``current_pos`` while filling (a later run resumes there), ``+`` at the end. ``-w``
makes write errors non-fatal: the rest of the cluster is then written sector by sector.
"""

from __future__ import annotations

import os
import time

from engine.errors import DdfsError, WriteError
from engine.map.mapfile import MapData
from engine.modes.book import Interrupted, ModeBook
from engine.options import RescueOptions
from engine.rescue.output import Output
from engine.rescue.setup import TRY_HELP, check_paths, load_map, make_domain, read_domain_map
from engine.rescue.source import Source

FILL_CHARS = "?*/-+l"
FILLING = "F"
DONE = "+"


def check_types(text: str) -> str:
    """Validate the argument of ``-F``.

    Raises:
        DdfsError: a character outside ``?*/-+l``.
    """
    if not text or any(c not in FILL_CHARS for c in text):
        raise DdfsError(f"'{text}': Invalid type in argument of option '-F'.")
    return text


class Filler(ModeBook):
    """One fill run over an output and a map.

    Raises (from the constructor):
        DdfsError: no mapfile, a missing or bad file, unreadable fill data.
    """

    def __init__(self, infile: str, outfile: str, mapfile: str | None, opts: RescueOptions):
        if mapfile is None:
            raise DdfsError("Mapfile required in fill mode.\n" + TRY_HELP)
        if opts.same_file:
            raise DdfsError("Option '--same-file' is incompatible with fill mode.\n" + TRY_HELP)
        check_paths(infile, outfile, mapfile, opts)
        types = opts.fill_types or ""
        self.opts = opts
        self.mapfile = mapfile
        self.types = types.replace("l", "")
        self.location = "l" in types
        self.ss = opts.sector_size
        self.softbs = opts.cluster_size
        domain_map = read_domain_map(opts)
        if not os.access(mapfile, os.R_OK):
            raise DdfsError(f"{mapfile}: Mapfile does not exist or is not readable.")
        data: MapData = load_map(mapfile)
        self.bmap = data.bmap
        self.current_pass = data.current_pass
        self.current_pos = data.current_pos if data.current_status == FILLING else 0
        self.status = data.current_status
        # -C is implied: the domain is cropped to the map, never to the input
        self.domain = make_domain(self.bmap, -1, opts, domain_map)
        ipos = opts.input_pos
        self.offset = (opts.output_pos if opts.output_pos is not None else ipos) - ipos
        self.buf = bytearray(self.softbs + self.ss)  # room for a header in the last sector
        self._read_fill_data(infile)
        self.output = Output(outfile, direct=opts.direct_out, synchronous=opts.synchronous)
        self.start_time = time.time()
        self.filled = 0
        self.areas = 0
        self.write_errors = 0
        self.interrupted = 0  # the signal number once one arrives
        self._last_save = time.monotonic()

    def _read_fill_data(self, infile: str) -> None:
        source = Source(infile, self.ss, self.opts.direct_in)
        try:
            copied, _ = source.read_into(0, self.softbs, memoryview(self.buf))
        finally:
            source.close()
        if copied <= 0:
            raise DdfsError("Error reading fill data from input file.")
        while copied < self.softbs:
            n = min(copied, self.softbs - copied)
            self.buf[copied : copied + n] = self.buf[:n]
            copied += n

    def runs(self) -> list[tuple[int, int, str]]:
        """The ``(start, end, status)`` areas to fill: blocks of TYPES clipped to the domain."""
        out = []
        for a, b in self.domain:
            for s, e, st in self.bmap.blocks_from(a):
                if s >= b:
                    break
                if st in self.types:
                    out.append((max(s, a), min(e, b), st))
        return out

    def run(self) -> None:
        """Fill every area, cluster by cluster; ``+`` in the status line at the end.

        Raises:
            WriteError: a write failed (without ``-w``).
            Interrupted: a signal arrived (between clusters).
        """
        resume = self.current_pos
        for start, end, st in self.runs():
            if end <= resume:
                continue
            pos = max(start, resume)
            while pos < end:
                self.current_pos = pos
                self.status = FILLING
                if self.interrupted:
                    raise Interrupted(self.interrupted)
                size = min(self.softbs, end - pos)
                self._fill(pos, size, st)
                self.filled += size
                self.maybe_save()
                pos += size
            self.areas += 1
        self.status = DONE

    def _fill(self, pos: int, size: int, status: str) -> None:
        ss = self.ss
        if self.location:
            for off in range(0, size, ss):
                p = pos + off
                hdr = b"\n# position 0x%08X sector 0x%08X status %c" % (p, p // ss, ord(status))
                if len(hdr) < ss:  # snprintf's NUL replaced by a space
                    self.buf[off : off + len(hdr) + 1] = hdr + b" "
                else:
                    self.buf[off : off + ss] = hdr[: ss - 1] + b"\0"
        view = memoryview(self.buf)
        try:
            self.output.write(pos + self.offset, view[:size])
        except WriteError:
            if not self.opts.ignore_write_errors:
                raise
            for off in range(0, size, ss):
                self.current_pos = pos + off
                try:
                    self.output.write(pos + self.offset + off, view[off : min(off + ss, size)])
                except WriteError:
                    self.write_errors += 1

    def before_save(self) -> None:
        self.output.fsync()  # the data reaches the disk before the map that claims it

    def close(self) -> None:
        self.output.close()
