"""The on-demand layer: the engine thread that runs a schedule and slips urgent reads in between
two of its reads, and the narrow facade a live view talks to. No FUSE, no trio."""
