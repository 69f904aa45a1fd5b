"""ddrescue's status screen: the seven-line block, repainted in place at most once a second.

On a terminal the block is redrawn with cursor-up codes; when stdout is not a terminal each
update prints one summary line instead, and ``-q`` prints nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from engine import DDRESCUE_VERSION, __version__
from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED
from engine.numbers import format_size, format_time, pct
from engine.rescue.book import RescueBook


def version_line() -> str:
    """The first line of the screen, as ddrescue starts with its name and version."""
    return f"ddfs {__version__} (GNU ddrescue {DDRESCUE_VERSION} compatible)\n"


def preview_lines(preview: tuple[int, bytes], count: int) -> list[str]:
    """``-P``: ``Data preview:``, ``count`` lines of hex and text of the latest data read, and a
    blank line (ddrescue's layout)."""
    pos, data = preview
    out = ["Data preview:"]
    for i in range(count):
        chunk = data[16 * i : 16 * i + 16]
        if pos >= 0 and chunk:
            chunk = chunk.ljust(16, b"\0")
            hexes = "".join(f" {b:02X}" + (" " if j == 7 else "") for j, b in enumerate(chunk))
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            out.append(f"{(pos + 16 * i) & 0xFFFFFFFFFF:010X} {hexes}  {text}")
        elif i == (count - 1) // 2:
            out.append(f"{'No data available':^78}".rstrip().ljust(78))
        else:
            out.append(" " * 78)
    out.append("")
    return out


class StatusScreen:
    """Collects one-second rate samples and renders ddrescue's status block."""

    def __init__(self, out: TextIO | None = None, quiet: bool = False, binary: bool = False):
        self.out = out or sys.stdout
        self.quiet = quiet
        self.binary = binary
        self.tty = self.out.isatty()
        self._drawn = False
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._last_sample = time.monotonic()
        self._last_rescued = 0
        self._last_errors = 0
        self.current_rate = 0.0
        self.error_rate = 0.0
        self._samples: deque[float] = deque(maxlen=30)
        self._last_message = ""
        self.extra: Callable[[], str] | None = None  # one more line (the mount's figures)

    def _b(self, n: float) -> str:
        return format_size(n, self.binary) + "B"

    def _rate(self, n: float) -> str:
        return format_size(n, self.binary, 99_999) + "B/s"

    def sample(self, r: RescueBook) -> None:
        now = time.monotonic()
        dt = now - self._last_sample
        if dt >= 1.0:
            rescued = r.rescued_this_run
            self.current_rate = (rescued - self._last_rescued) / dt
            self._samples.append(self.current_rate)
            self._last_rescued = rescued
            self.error_rate = (r.error_bytes - self._last_errors) / dt
            self._last_errors = r.error_bytes
            self._last_sample = now

    def lines(self, r: RescueBook) -> list[str]:
        bm = r.map.bmap
        elapsed = time.time() - r.start_time
        domain = r.map.domain_in_size or 1
        rescued = r.map.domain_size_of(FINISHED, whole=True)
        avg = r.rescued_this_run / elapsed if elapsed > 0 else 0.0
        remaining = r.map.domain_size_of(NON_TRIED + NON_TRIMMED + NON_SCRAPED, whole=True)
        if r.opts.max_retries:
            remaining += r.map.domain_size_of(BAD_SECTOR, whole=True)
        rate = sum(self._samples) / len(self._samples) if self._samples else 0.0
        if rate > 0:
            secs = remaining / rate
            rem = format_time(secs, low_precision=secs >= 180)
        else:
            rem = "n/a"
        since = (
            format_time(time.time() - r.last_good_read) if r.last_good_read is not None else "n/a"
        )
        ipos = r.last_read_pos
        slow = "" if r.opts.min_read_rate is None else f" slow reads:{r.rates.slow_reads:9d},"
        out = [
            f"     ipos: {self._b(ipos):>10}, non-trimmed: {self._b(bm.size_of(NON_TRIMMED)):>10},"
            f"  current rate: {self._rate(self.current_rate):>11}",
            f"     opos: {self._b(ipos + r.offset):>10}, non-scraped: "
            f"{self._b(bm.size_of(NON_SCRAPED)):>10},  average rate: {self._rate(avg):>11}",
            f"non-tried: {self._b(r.map.domain_size_of(NON_TRIED, whole=True)):>10},  bad-sector: "
            f"{self._b(r.map.domain_size_of(BAD_SECTOR, whole=True)):>10},    error rate: "
            f"{self._rate(self.error_rate):>11}",
            f"  rescued: {self._b(rescued):>10},   bad areas: {bm.count_of(BAD_SECTOR):8d},"
            f"        run time: {format_time(elapsed):>11}",
            f"pct rescued: {pct(rescued, domain):>8}, read errors:{r.read_errors:9d},"
            f"  remaining time: {rem:>11}",
            f"{slow:22}        time since last successful read: {since:>11}",
        ]
        if r.opts.preview_lines and self.tty:
            out[:0] = preview_lines(r.preview, r.opts.preview_lines)
        if self.extra is not None:
            out.extend(self.extra().split("\n"))
        return out

    def start(self, r: RescueBook, existed: bool) -> None:
        if self.quiet:
            return
        if not r.opts.ask:  # --ask showed the version line and the summary already
            self.out.write(version_line())
        if r.opts.verbosity and not r.opts.ask:
            size = sum(b - a for a, b in r.map.whole_domain)
            ipos = r.map.domain_start
            self.out.write(
                f"About to copy {format_size(size, self.binary)}Bytes from "
                f"'{r.source.path}' to '{r.output.path}'\n"
                f"    Starting positions: infile = {self._b(ipos)},"
                f"  outfile = {self._b(ipos + r.offset)}\n"
                f"    Copy block size: {r.softbs // r.ss} sectors"
                f"       Initial skip size: {r.skip_initial // r.ss} sectors\n"
                f"Sector size: {r.ss} Bytes\n\n"
            )
        if existed:
            bm = r.map.bmap
            tried = r.map.domain_size_of(NON_TRIMMED + NON_SCRAPED + BAD_SECTOR, whole=True)
            self.out.write(
                "Initial status (read from mapfile)\n"
                f"rescued: {self._b(r.map.domain_size_of(FINISHED, whole=True))},"
                f" tried: {self._b(tried)},"
                f" bad-sector: {self._b(r.map.domain_size_of(BAD_SECTOR, whole=True))},"
                f" bad areas: {bm.count_of(BAD_SECTOR)}\n\n"
            )
        self.out.write("Press Ctrl-C to interrupt\n")
        self.out.flush()

    def update(self, r: RescueBook, force: bool = False) -> None:
        self.sample(r)
        if self.quiet:
            return
        now = time.monotonic()
        new_phase = r.message != self._last_message
        if not force and not new_phase and now - self._last_draw < 1.0:
            return
        self._last_draw = now
        if self.tty:
            if new_phase and self._drawn:
                self.out.write("\n")  # scroll: keep the last state of the previous pass
                self._drawn = False
            lines = self.lines(r)
            body = "\n".join(lines) + "\n" + r.message
            if self._drawn:  # back to the top of the block as it was drawn last time
                self.out.write("\r\x1b[A" * self._drawn_lines + "\r\x1b[J" + body)
            else:
                self.out.write(body)
            self._drawn = True
            width = self._width()  # a line longer than the terminal takes more rows
            self._drawn_lines = sum(max(1, -(-len(line) // width)) for line in lines)
            self._drawn_lines += max(0, len(r.message) - 1) // width  # (the message's own)
        else:
            lines = self.lines(r)
            summary = "; ".join(" ".join(line.split()) for line in lines[2:5] + lines[6:])
            summary = summary.replace(",; ", ", ")  # a line wrapped for 80 columns
            self.out.write(f"{r.message}: {summary}\n")
        self._last_message = r.message
        self.out.flush()

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80

    def note(self, text: str) -> None:
        """Lines between two blocks (the metadata plan's summary): on a terminal, under the
        block drawn last, which the next drawing leaves in place."""
        if self.quiet:
            return
        if self.tty and self._drawn:
            self.out.write("\n")
            self._drawn = False
        self.out.write(text + "\n")
        self.out.flush()

    def finish(self, r: RescueBook, final_line: str) -> None:
        if self.quiet:
            return
        self.update(r, force=True)
        if self.tty and final_line == r.message:
            self.out.write("\n")  # the block's last line already says it
        else:
            self.out.write(("\n" if self.tty else "") + final_line + "\n")
        self.out.flush()


def fit(prefix: str, parts: list[str], width: int = 79) -> str:
    """``prefix`` and ``parts`` joined by ", " into lines of at most ``width`` characters (the
    status screen fits 80 columns, as ddrescue's does); continuation lines are indented."""
    indent = " " * min(len(prefix), 12)
    lines = [prefix.rstrip() + " "]
    for i, part in enumerate(parts):
        piece = part + ("," if i < len(parts) - 1 else "")
        line = lines[-1]
        if len(line) + len(piece) > width and line.strip() not in ("", prefix.strip()):
            lines[-1] = line.rstrip()
            lines.append(indent + piece + " ")
        else:
            lines[-1] = line + piece + " "
    return "\n".join(line.rstrip() for line in lines)
