"""``--log-reads``: one line per read in ddrescue's format, with phase headers; a failure with
an errno other than EIO gets it in a fifth column, as ddrescue 1.29 and later write it (not with
ddrescue 1.27's meanings)."""

from __future__ import annotations

import errno

from engine.rescue.runlogs import close_log, dhms, file_header


class ReadLog:
    """Writes ``0x%08X\\t%d\\t%d\\t%d`` per read, ``# <t>  <message>`` per phase that reads."""

    def __init__(self, path: str, command_line: str, errno_column: bool = True) -> None:
        self._fh = open(path, "w", encoding="ascii", errors="replace")  # noqa: SIM115
        self._last_was_read = False
        self._last_mark = 0
        self.errno_column = errno_column
        self._fh.write(file_header("Reads Logfile", command_line))
        errno_title = "  Errno" if errno_column else ""
        self._fh.write(f"#  Ipos       Size  Copied_size  Error_size{errno_title}\n")

    def phase(self, message: str, elapsed: float) -> None:
        if self._last_was_read:
            self._fh.write("\n")
        self._fh.write(f"# {dhms(int(elapsed))}  {message}\n")
        self._last_was_read = False
        self._last_mark = int(elapsed)

    def read(
        self, pos: int, size: int, copied: int, error: int, elapsed: float, err: int = 0
    ) -> None:
        if int(elapsed) > self._last_mark:
            self._last_mark = int(elapsed)
            self._fh.write(f"# {dhms(int(elapsed))}\n")
        if err > 0 and err != errno.EIO and self.errno_column:
            self._fh.write(f"0x{pos:08X}\t{size}\t{copied}\t{error}\t{err}\n")
        else:
            self._fh.write(f"0x{pos:08X}\t{size}\t{copied}\t{error}\n")
        self._last_was_read = True

    def close(self) -> None:
        close_log(self._fh)
