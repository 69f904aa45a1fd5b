"""Which files are damaged: the files and directories of a filesystem image whose bytes lie in
areas a mapfile does not call finished (bad, or not rescued yet)."""
