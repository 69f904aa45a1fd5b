"""ddrescue's block status characters, and their byte codes as a :class:`BlockMap` stores them."""

from __future__ import annotations

STATUSES = "?*/-+"
NON_TRIED, NON_TRIMMED, NON_SCRAPED, BAD_SECTOR, FINISHED = "?", "*", "/", "-", "+"
#: the byte code of each status character
STATUS_CODE = {c: ord(c) for c in STATUSES}
