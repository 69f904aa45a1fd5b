"""The ddfs rescue engine: a GNU ddrescue 1.27-compatible core with no FUSE dependency.

Modules, bottom up: ``blockmap`` (the map of statuses), ``mapfile`` (ddrescue's file format and
atomic saves), ``domain``, ``source`` and ``output`` (the I/O ends), ``passes`` (one module per
phase), ``rescuer`` (the step-by-step driver), ``status`` (figures and the status screen).
"""

__version__ = "0.1.0"
DDRESCUE_VERSION = "1.27"
