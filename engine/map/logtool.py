"""The operations of ``ddfs log`` (GNU ddrescuelog 1.27), as pure functions.

Each operation takes already-read maps and options and returns ``(text, exit_code)``;
reading files, printing and deleting are left to the caller. Maps are handled as lists of
``(pos, size, status)`` blocks: unlike ddrescue, ddrescuelog keeps a map that starts after 0
as it is (the gap is not filled).

This module gathers the public names: the maps in :mod:`engine.map.logtool_maps`, the domain
in :mod:`engine.map.logtool_domain`, the reports in :mod:`engine.map.logtool_report`, the block
operations in :mod:`engine.map.logtool_edit`, the sector lists and bitmaps in
:mod:`engine.map.logtool_sectors`, 1.30's ``--make-test`` maps in
:mod:`engine.map.logtool_maketest`.
"""

from __future__ import annotations

from engine.map.logtool_domain import crop, make_domain, raw_domain, split
from engine.map.logtool_edit import change_types, combine, compare, invert, parse_types, shift
from engine.map.logtool_maketest import Geometry, make_test_text, parse_geometry
from engine.map.logtool_maps import (
    INF,
    STATUSES,
    Block,
    Domain,
    LogMap,
    compact,
    from_mapdata,
    loose_map,
    map_text,
)
from engine.map.logtool_report import annotate, is_done, show_status
from engine.map.logtool_sectors import (
    bitmap_runs,
    create_map,
    list_bitmap,
    list_blocks,
    list_runs,
)

__all__ = [
    "INF",
    "STATUSES",
    "Block",
    "Domain",
    "Geometry",
    "LogMap",
    "annotate",
    "bitmap_runs",
    "change_types",
    "combine",
    "compact",
    "compare",
    "create_map",
    "crop",
    "from_mapdata",
    "invert",
    "is_done",
    "list_bitmap",
    "list_blocks",
    "list_runs",
    "loose_map",
    "make_domain",
    "make_test_text",
    "map_text",
    "parse_geometry",
    "parse_types",
    "raw_domain",
    "shift",
    "show_status",
    "split",
]
