"""Command mode (``--command-mode``): another program drives the rescue over standard input, as
GNU ddrescue documents it ("Copying parts of the input file on demand").

One command per line; runs of white space count as one space and empty lines are skipped. The
answer to each is a line on standard output: ``done``, ``error`` (bad arguments) or ``error:
MESSAGE`` (a read, write or map error, or an unknown command); an error does not end the
session, but the exit status is then 1. End of input discards a partial line and finishes.

* ``c POS SIZE``: copy the unfinished parts of ``[POS, POS+SIZE)`` inside the domain, a
  cluster at a time (reads end on cluster boundaries, never cross a map block); a failed read
  marks its bytes bad-sector (``-``).
* ``s POS SIZE``: the map's blocks over ``[POS, POS+SIZE)``, in mapfile format, then ``done``.
* ``u``: save the mapfile (data fsynced first). ``f``: save it and end (exit 0).
* ``q``: end without saving the mapfile.

Numbers are C integers (``0x`` hex, leading-0 octal). ddfs's map book saves at ddrescue's usual
interval meanwhile (at least 30 s apart), so a long session that ends by ``q`` or a crash does
not lose everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import pairwise
from typing import TextIO

from engine.errors import DdfsError
from engine.numbers import parse_c_int
from engine.rescue.book import RescueBook
from engine.schedule.base import Read

UNFINISHED = "?*/-"


def commands(lines: Iterable[str]) -> Iterator[str]:
    """The commands in ``lines``, white space normalised; ``f`` at the end of input (a last
    line without its newline is discarded)."""
    for line in lines:
        if not line.endswith("\n"):
            break
        command = " ".join(line.split())
        if command:
            yield command
    yield "f"


def _two_numbers(text: str) -> tuple[int, int] | None:
    parts = text.split()
    if len(parts) != 2:
        return None
    try:
        pos, size = parse_c_int(parts[0]), parse_c_int(parts[1])
    except ValueError:
        return None
    return (pos, size) if pos >= 0 and size > 0 else None


class CommandMode:
    """Runs the commands on a prepared rescue book, answering on ``out``."""

    def __init__(self, book: RescueBook, out: TextIO) -> None:
        self.book = book
        self.out = out
        self.failed = False

    def run(self, lines: Iterable[str]) -> int:
        """Execute the commands; return the exit status (1 if any command failed)."""
        for command in commands(lines):
            if command == "q":
                break
            try:
                finish = self.execute(command)
            except DdfsError as exc:
                self.answer(f"error: {exc.message}")
                continue
            if finish:
                break
        return 1 if self.failed else 0

    def answer(self, text: str) -> None:
        if text != "done":
            self.failed = True
        self.out.write(text + "\n")
        self.out.flush()

    def execute(self, command: str) -> bool:
        """Run one command and answer it; True for ``f`` (the session ends)."""
        name, args = command[0], command[1:]
        if command in ("u", "f"):
            self.book.save(final=command == "f")
        elif name == "c" and args:
            numbers = _two_numbers(args)
            if numbers is None:
                self.answer("error")
                return False
            self.copy(*numbers)
        elif name == "s" and args:
            numbers = _two_numbers(args)
            if numbers is None:
                self.answer("error")
                return False
            if not self.status(*numbers):
                self.answer("error")
                return False
        else:
            self.answer(f"error: unknown command '{command}'")
            return False
        self.answer("done")
        return command == "f"

    def copy(self, pos: int, size: int) -> None:
        """``c``: read the unfinished clusters of ``[pos, pos + size)`` in the domain."""
        end = pos + size
        while pos < end:
            read = self._next_read(pos, end)
            if read is None:
                return
            self.book.do_read(read, copying=False)
            pos = read.end

    def _next_read(self, pos: int, end: int) -> Read | None:
        """ddrescue's next chunk: from the first unfinished block at or after ``pos``, at most
        a cluster, ending on a cluster boundary unless it ends with the block."""
        book = self.book.map
        found = book.find_forward(pos, UNFINISHED)
        if found is None:
            return None
        block = book.find_forward(found[0], book.bmap.status_at(found[0]))
        if block is None:  # not reached: the block found above has that status
            return None
        start = max(pos, block[0])
        if start >= end:
            return None
        softbs = self.book.softbs
        stop = min(start + softbs, block[1])
        if stop != block[1] and stop - start > stop % softbs:
            stop -= stop % softbs
        return Read(start, min(stop, end) - start)

    def status(self, pos: int, size: int) -> bool:
        """``s``: the blocks over ``[pos, pos + size)``, cut at the domain's borders; False
        when ``pos`` is past the map."""
        book = self.book.map
        end = pos + size
        lo, hi = book.domain_start, book.domain_end
        if pos >= book.bmap.end:
            return False
        for start, stop, status in book.bmap.blocks_from(pos):
            if start >= end or start >= hi:
                break
            cuts = sorted({start, stop, *(p for p in (lo, hi) if start < p < stop)})
            for a, b in pairwise(cuts):
                if a >= hi:
                    break
                a, b = max(a, pos), min(b, end)
                if a < b:
                    self.out.write(f"0x{a:08X}  0x{b - a:08X}  {status}\n")
        return True

