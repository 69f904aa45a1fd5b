"""Writing GNU ddrescue's mapfile format: the header comments and the mapfile text.

Writing produces ddrescue's layout byte for byte in the data lines. The text comes in pieces
of at most 65536 block lines (:func:`iter_mapfile_text`), which
:func:`engine.map.mapfile_save.save_mapfile` writes one by one; :func:`mapfile_text` joins them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from operator import sub

from engine import DDRESCUE_VERSION, __version__
from engine.map.blockmap import BlockMap


def format_header(
    command_line: str | None,
    start_time: float | None,
    current_time: float | None,
    message: str,
    tool: str = "ddfs",
) -> str:
    """The comment lines ddrescue writes before the status line.

    They are comments only, so a name Latin-1 cannot hold (a path in another script, a
    surrogate from undecodable bytes) shows as ``?`` rather than stop the map being saved."""
    lines = [f"# Mapfile. Created by {tool} {__version__} (GNU ddrescue {DDRESCUE_VERSION} format)"]
    if command_line is not None:
        lines.append(f"# Command line: {command_line}")
    if start_time is not None:
        lines.append(f"# Start time:   {_stamp(start_time)}")
    if current_time is not None:
        lines.append(f"# Current time: {_stamp(current_time)}")
    if message:
        lines.append(f"# {message}")
    text = "\n".join(lines) + "\n"
    return text.encode("latin-1", "replace").decode("latin-1")


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def iter_mapfile_text(
    bmap: BlockMap, current_pos: int, current_status: str, current_pass: int, header: str
) -> Iterable[str]:
    """The mapfile text in pieces of at most 65536 block lines."""
    yield header
    yield "# current_pos  current_status  current_pass\n"
    yield f"0x{current_pos:08X}     {current_status}               {current_pass}\n"
    yield "#      pos        size  status\n"
    line = "0x%08X  0x%08X  %c\n"
    for s, sts, piece_end in bmap.array_pieces(65536):
        e = s[1:]
        e.append(piece_end)
        flat: list[int] = [0] * (3 * len(s))
        flat[0::3] = s
        flat[1::3] = list(map(sub, e, s))
        flat[2::3] = sts
        yield (line * len(s)) % tuple(flat)


def mapfile_text(
    bmap: BlockMap,
    current_pos: int = 0,
    current_status: str = "?",
    current_pass: int = 1,
    header: str = "",
) -> str:
    return "".join(iter_mapfile_text(bmap, current_pos, current_status, current_pass, header))
