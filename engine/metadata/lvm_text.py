"""LVM2's metadata text format, parsed for :mod:`engine.metadata.lvm`.

The volume group metadata an LVM2 metadata area holds (and ``vgcfgbackup`` writes) is a tree
of ``name { ... }`` sections and ``key = value`` settings, where a value is a string
(``"..."`` with backslash escapes), a number or a ``[v, v, ...]`` list; ``#`` starts a comment
and a NUL ends the text. :func:`parse` gives the tree as nested dicts (sections), lists, strings,
ints and floats, or raises :class:`TextError`; it never recurses deeper than :data:`MAX_DEPTH`.
The helpers :func:`section`, :func:`integer`, :func:`string` and :func:`strings` read a
setting of the expected type, or None.
"""

from __future__ import annotations

import re

MAX_DEPTH = 64  # nesting of sections and lists (LVM writes 4 levels)
Section = dict[str, object]

_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<punct>[{}\[\]=,])
    |(?P<word>[^\s{}\[\]=,"\#]+)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class TextError(ValueError):
    """The text is not LVM metadata (a syntax error, or nesting past :data:`MAX_DEPTH`)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    """``(kind, token)`` pairs; kind is ``string`` (unquoted), ``punct`` or ``word``."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TextError(f"unexpected {text[pos]!r} at character {pos}")
        kind = m.lastgroup or "space"
        if kind == "string":
            out.append((kind, _ESCAPE.sub(r"\1", m.group()[1:-1])))
        elif kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens, at most :data:`MAX_DEPTH` levels deep."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, punct: str) -> None:
        if self.take() != ("punct", punct):
            raise TextError(f"expected {punct!r} at token {self.i}")

    def body(self, depth: int, closing: bool) -> Section:
        """Settings and sections up to ``}`` (``closing``) or the end of the text."""
        if depth > MAX_DEPTH:
            raise TextError("nested too deeply")
        out: Section = {}
        while True:
            kind, tok = self.take()
            if closing and (kind, tok) == ("punct", "}"):
                return out
            if kind == "end" and not closing:
                return out
            if kind not in ("word", "string"):
                raise TextError(f"unexpected {tok or 'end'!r} at token {self.i}")
            after = self.take()
            if after == ("punct", "{"):
                value: object = self.body(depth + 1, True)
            elif after == ("punct", "="):
                value = self.value(depth + 1)
            else:
                raise TextError(f"expected '=' or '{{' after {tok!r}")
            out.setdefault(tok, value)

    def value(self, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise TextError("nested too deeply")
        kind, tok = self.take()
        if kind == "string":
            return tok
        if kind == "word":
            return _number(tok)
        if (kind, tok) != ("punct", "["):
            raise TextError(f"unexpected {tok or 'end'!r} in a value")
        items: list[object] = []
        while self.peek() != ("punct", "]"):
            items.append(self.value(depth + 1))
            if self.peek() == ("punct", ","):
                self.take()
        self.take()
        return items


def _number(word: str) -> object:
    """An int or a float; any other bare word is kept as a string."""
    try:
        return int(word)
    except ValueError:
        pass
    try:
        return float(word)
    except ValueError:
        return word


def parse(text: str) -> Section:
    """The tree of ``text`` (up to its first NUL)."""
    return _Parser(_tokens(text.split("\0", 1)[0])).body(0, False)


# ------------------------------------------------------------------ typed access
def section(tree: Section, key: str) -> Section | None:
    value = tree.get(key)
    return value if isinstance(value, dict) else None


def integer(tree: Section, key: str) -> int | None:
    value = tree.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def string(tree: Section, key: str) -> str | None:
    value = tree.get(key)
    return value if isinstance(value, str) else None


def strings(tree: Section, key: str) -> list[str]:
    """A list of strings (``status = ["READ", "WRITE"]``); other items are left out."""
    value = tree.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
