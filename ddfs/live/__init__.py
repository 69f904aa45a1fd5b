"""The live view: a pure tree model of the mount, the read policy over the engine's facade, the
copy-on-write overlay and the repair view, and the thin pyfuse3 adapter."""
