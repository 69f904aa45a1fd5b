"""Reading back the comment lines ddfs keeps in a mapfile's header (the source's identity, the
measured rates): the lines before the status line, which ddrescue and ddrescuelog skip."""

from __future__ import annotations


def header_comments(mapfile: str | None) -> list[str]:
    """The comment lines before the first non-comment line, stripped ([] if unreadable)."""
    if mapfile is None:
        return []
    out: list[str] = []
    try:
        with open(mapfile, encoding="latin-1") as fh:
            for line in fh:
                stripped = line.strip()
                if stripped and not stripped.startswith("#"):
                    break
                if stripped:
                    out.append(stripped)
    except OSError:
        return []
    return out
