"""ddfs: the command line and the FUSE views (live mount, simulated disk) over ``engine``."""

from engine import __version__

__all__ = ["__version__"]
