"""Which files are damaged: the files and directories of a disk image whose bytes lie in areas
a mapfile does not call finished (bad, or not rescued yet), for ``ddfs report``.

* :mod:`engine.damage.model`: the map's not-finished ranges (:class:`~model.Damage`), a reader
  of the image that only gives finished bytes, and what a filesystem module reports
  (entries with their disk ranges, metadata structures, notes), plus path rebuilding;
* :mod:`engine.damage.ext`, :mod:`~engine.damage.ntfs`, :mod:`~engine.damage.fat`,
  :mod:`~engine.damage.exfat`: one module per filesystem (``NAME``, ``probe(vol)``,
  ``scan(vol)``), reusing the parsers of :mod:`engine.metadata`;
* :mod:`engine.damage.report`: partitions, probing, and the intersection with the map.

Nothing is parsed from bytes the map does not call finished: in an image they read as zeros,
so a structure there is unknown, never data.
"""
