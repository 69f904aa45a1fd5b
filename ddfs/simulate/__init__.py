"""ddfs simulate: a failing disk as a pure model (disk.py) served through a thin pyfuse3 adapter
(fusefs.py)."""
