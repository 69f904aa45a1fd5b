"""``--log-reads``: one line per read in ddrescue 1.27's format, with phase headers."""

from __future__ import annotations

from engine.rescue.runlogs import close_log, dhms, file_header


class ReadLog:
    """Writes ``0x%08X\\t%d\\t%d\\t%d`` per read, ``# <t>  <message>`` per phase that reads."""

    def __init__(self, path: str, command_line: str) -> None:
        self._fh = open(path, "w", encoding="ascii", errors="replace")  # noqa: SIM115
        self._last_was_read = False
        self._last_mark = 0
        self._fh.write(file_header("Reads Logfile", command_line))
        self._fh.write("#  Ipos       Size  Copied_size  Error_size\n")

    def phase(self, message: str, elapsed: float) -> None:
        if self._last_was_read:
            self._fh.write("\n")
        self._fh.write(f"# {dhms(int(elapsed))}  {message}\n")
        self._last_was_read = False
        self._last_mark = int(elapsed)

    def read(self, pos: int, size: int, copied: int, error: int, elapsed: float) -> None:
        if int(elapsed) > self._last_mark:
            self._last_mark = int(elapsed)
            self._fh.write(f"# {dhms(int(elapsed))}\n")
        self._fh.write(f"0x{pos:08X}\t{size}\t{copied}\t{error}\n")
        self._last_was_read = True

    def close(self) -> None:
        close_log(self._fh)
