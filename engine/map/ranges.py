"""Sorted lists of disjoint ``(start, end)`` byte ranges: union, intersection, difference."""

from __future__ import annotations

from collections.abc import Iterable

Ranges = list[tuple[int, int]]


def merge(spans: Iterable[tuple[int, int]]) -> Ranges:
    """The sorted, disjoint union of ``(start, end)`` spans (empty ones dropped)."""
    out: Ranges = []
    for s, e in sorted(sp for sp in spans if sp[1] > sp[0]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def intersect(a: Ranges, b: Ranges) -> Ranges:
    """The intersection of two sorted lists of disjoint ``(start, end)`` ranges."""
    out: Ranges = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Ranges, b: Ranges) -> Ranges:
    """``a`` without ``b`` (both sorted and disjoint)."""
    out: Ranges = []
    j = 0
    for s, e in a:
        while j < len(b) and b[j][1] <= s:
            j += 1
        k = j
        pos = s
        while k < len(b) and b[k][0] < e:
            if b[k][0] > pos:
                out.append((pos, b[k][0]))
            pos = max(pos, b[k][1])
            k += 1
        if pos < e:
            out.append((pos, e))
    return out
