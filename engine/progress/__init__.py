"""Progress as people see it: the figures per tier and the remaining-time range, and ddrescue's
status screen."""
