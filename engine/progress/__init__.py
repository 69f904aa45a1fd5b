"""Progress as people see it: the figures per tier (metadata, used data, free space), the
remaining-time range, and the rates line of the mapfile header."""
