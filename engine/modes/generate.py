"""Generate mode (``-G``): an approximate map from a partial copy made without one.

As in GNU ddrescue 1.27 (docs/ddrescue-behaviour.md §3.5): the output is read (read-only) in
cluster steps over the ``?`` blocks of the domain; a sector with any non-zero byte becomes
``+``, all-zero sectors stay ``?``. A chunk is at most one cluster from where the search
found a ``?`` block, its end aligned down to a sector unless it is the block's end; sectors
count from the chunk start. The map is cut where the output ends. The status line is ``G``
(with ``current_pos``, where a later run resumes) while running and ``+`` at the end. An
existing map is refused unless its status is ``G`` or all of it (cropped to the input) is
``?``.
"""

from __future__ import annotations

import os
import time

from engine.errors import DdfsError
from engine.map.blockmap import FINISHED, NON_TRIED
from engine.modes.book import Interrupted, ModeBook
from engine.options import RescueOptions
from engine.rescue.setup import (
    TRY_HELP,
    check_paths,
    fit_to_input,
    load_map,
    make_domain,
    read_domain_map,
)
from engine.rescue.source import Source

GENERATING = "G"
DONE = "+"


class Generator(ModeBook):
    """One generate run: the map of ``outfile`` (a partial copy of ``infile``).

    Raises (from the constructor):
        DdfsError: no mapfile, a map that is not a generate map, a missing or bad file.
    """

    def __init__(self, infile: str, outfile: str, mapfile: str | None, opts: RescueOptions):
        if mapfile is None:
            raise DdfsError("Mapfile must be specified in generate mode.\n" + TRY_HELP)
        check_paths(infile, outfile, mapfile, opts)
        self.opts = opts
        self.mapfile = mapfile
        self.ss = opts.sector_size
        self.softbs = opts.cluster_size
        domain_map = read_domain_map(opts)
        data = load_map(mapfile)
        source = Source(infile, self.ss, opts.direct_in)
        insize = source.size
        source.close()
        fit_to_input(data, insize)
        # ddrescue's "blank" map: every block (once fitted to the input) is non-tried
        if data.current_status != GENERATING and data.bmap.size_of(NON_TRIED) < data.bmap.end:
            raise DdfsError(f"{mapfile}: Mapfile already exists and is not empty.")
        self.bmap = data.bmap
        self.current_pass = data.current_pass
        self.domain = make_domain(self.bmap, insize, opts, domain_map)
        resume = data.current_status == GENERATING and any(
            a <= data.current_pos < b for a, b in self.domain
        )
        self.current_pos = data.current_pos
        self.pos = data.current_pos if resume else (self.domain[0][0] if self.domain else 0)
        self.status = data.current_status if not data.blank else NON_TRIED
        ipos = opts.input_pos
        self.offset = (opts.output_pos if opts.output_pos is not None else ipos) - ipos
        try:
            self.fd = os.open(outfile, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise DdfsError(f"{outfile}: Can't open output file: {exc.strerror}") from None
        self.start_time = time.time()
        self.checked = 0
        self.found = 0
        self.interrupted = 0  # the signal number once one arrives
        self._last_save = time.monotonic()

    def next_chunk(self, pos: int) -> tuple[int, int] | None:
        """The next chunk of ``?`` to check at or after ``pos``, as ``(start, end)``."""
        for a, b in self.domain:
            if b <= pos:
                continue
            found = self.bmap.find_forward(max(a, pos), NON_TRIED, b)
            if found is None:
                continue
            start, block_end = found
            end = min(start + self.softbs, block_end)
            if end != block_end and end % self.ss < end - start:
                end -= end % self.ss
            return start, end
        return None

    def run(self) -> None:
        """Check every ``?`` chunk; ``+`` in the status line at the end.

        Raises:
            Interrupted: a signal arrived (between chunks).
        """
        pos = self.pos
        while (chunk := self.next_chunk(pos)) is not None:
            start, end = chunk
            self.current_pos = start
            self.status = GENERATING
            if self.interrupted:
                raise Interrupted(self.interrupted)
            data, error = self._read(start + self.offset, end - start)
            self._mark(start, data)
            self.checked += len(data)
            if len(data) < end - start and not error:  # the output ends here
                cut = start + len(data)
                self.bmap.set_end(cut)
                self.domain = [(a, min(b, cut)) for a, b in self.domain if a < cut]
            pos = end
            self.maybe_save()
        self.status = DONE

    def _read(self, pos: int, size: int) -> tuple[bytes, bool]:
        out = b""
        while len(out) < size:
            try:
                piece = os.pread(self.fd, size - len(out), pos + len(out))
            except InterruptedError:
                continue
            except OSError:
                return out, True
            if not piece:
                break
            out += piece
        return out, False

    def _mark(self, start: int, data: bytes) -> None:
        """Mark the sectors of ``data`` (read at ``start``) holding a non-zero byte ``+``."""
        ss = self.ss
        zero = bytes(ss)
        run_start = -1
        for off in range(0, len(data) + ss, ss):
            piece = data[off : off + ss]
            nonzero = bool(piece) and piece != zero[: len(piece)]
            if nonzero and run_start < 0:
                run_start = off
            elif not nonzero and run_start >= 0:
                end = min(off, len(data))
                self.bmap.set_status(start + run_start, end - run_start, FINISHED)
                self.found += end - run_start
                run_start = -1
            if off >= len(data):
                break

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
