"""The ddfs rescue engine: a GNU ddrescue-compatible core with no FUSE, trio or command line.

Layers, bottom up (each imports only those below it; pyproject.toml has the contracts):
``map`` (the block map, the mapfile format, the map book), ``schedule`` (strategies that decide
the next read: ddrescue 1.27's, metadata first), ``rescue`` (the rescue book that performs
reads, its limits, logs and the builder), ``ondemand`` (the engine thread, urgent reads and the
facade a live view talks to) and ``modes`` (fill and generate mode). Beside them, pure parsers
and figures that never read the source: ``metadata`` (partition tables, filesystem planners),
``damage`` (which files are damaged) and ``progress`` (figures per tier).
"""

__version__ = "0.1.0"
DDRESCUE_VERSION = "1.27"
