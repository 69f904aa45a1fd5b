"""GNU ddrescue's mapfile format: lenient reading, exact writing, atomic saves with ``MAP.bak``.

The format's public names, gathered in one place: reading in :mod:`engine.map.mapfile_read`,
writing the text in :mod:`engine.map.mapfile_write`, saving it atomically in
:mod:`engine.map.mapfile_save`.
"""

from __future__ import annotations

from engine.errors import MapfileError
from engine.map.mapfile_read import (
    PHASE_NAMES,
    PHASES,
    MapData,
    parse_mapfile,
    parse_mapfile_text,
)
from engine.map.mapfile_save import NO_SPACE, save_mapfile
from engine.map.mapfile_write import format_header, iter_mapfile_text, mapfile_text

__all__ = [
    "NO_SPACE",
    "PHASES",
    "PHASE_NAMES",
    "MapData",
    "MapfileError",
    "format_header",
    "iter_mapfile_text",
    "mapfile_text",
    "parse_mapfile",
    "parse_mapfile_text",
    "save_mapfile",
]
