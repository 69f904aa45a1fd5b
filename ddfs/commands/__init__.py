"""The command line: one module per ddfs command, and the helpers they share (common.py). Commands
wire the engine and the live view together; nothing below imports them."""
