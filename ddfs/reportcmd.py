"""``ddfs report IMAGE MAPFILE``: the files and directories with damaged or unrescued bytes."""

from __future__ import annotations
