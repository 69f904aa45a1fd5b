"""BlockMap against a naive byte-per-position model, and its speed with many fragments."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.map.blockmap import STATUSES, BlockMap


def model_blocks(model: list[str]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for i, c in enumerate(model):
        if out and out[-1][2] == c:
            p, s, _ = out[-1]
            out[-1] = (p, s + 1, c)
        else:
            out.append((i, 1, c))
    return out


ops = st.lists(
    st.tuples(st.integers(0, 199), st.integers(1, 60), st.sampled_from(STATUSES)),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, load=st.sampled_from([1, 2, 3, 512]))
def test_set_status_matches_model(ops: list[tuple[int, int, str]], load: int) -> None:
    size = 200
    bm = BlockMap(size)
    bm.LOAD = load  # tiny chunks exercise the chunk splitting and splicing
    model = ["?"] * size
    for pos, n, status in ops:
        n = min(n, size - pos)
        bm.set_status(pos, n, status)
        model[pos : pos + n] = [status] * n
        bm.check()
        assert list(bm) == model_blocks(model)
    for pos in range(0, size, 7):
        s, e, c = bm.block_at(pos)
        assert model[pos] == c and s <= pos < e


@settings(max_examples=100, deadline=None)
@given(ops=ops, probe=st.integers(0, 210), statuses=st.sampled_from(["?", "*/", "-", "+?"]))
def test_find_matches_model(ops: list[tuple[int, int, str]], probe: int, statuses: str) -> None:
    size = 200
    bm = BlockMap(size)
    bm.LOAD = 2
    model = ["?"] * size
    for pos, n, status in ops:
        n = min(n, size - pos)
        bm.set_status(pos, n, status)
        model[pos : pos + n] = [status] * n
    fwd = [i for i in range(probe, size) if model[i] in statuses]
    got = bm.find_forward(probe, statuses)
    if not fwd:
        assert got is None
    else:
        start = fwd[0]
        stop = start
        while stop < size and model[stop] in statuses and model[stop] == model[start]:
            stop += 1
        assert got == (start, stop)
    bwd = [i for i in range(min(probe, size)) if model[i] in statuses]
    got = bm.find_backward(probe, statuses)
    if not bwd:
        assert got is None
    else:
        last = bwd[-1]
        first = last
        while first > 0 and model[first - 1] == model[last]:
            first -= 1
        assert got == (first, last + 1)


def test_set_end_crops_and_extends() -> None:
    bm = BlockMap.from_blocks([(0, 10, "+"), (10, 10, "-"), (20, 10, "?")])
    bm.set_end(15)
    bm.check()
    assert list(bm) == [(0, 10, "+"), (10, 5, "-")]
    bm.set_end(40, "?")
    bm.check()
    assert list(bm) == [(0, 10, "+"), (10, 5, "-"), (15, 25, "?")]


def test_million_fragments_stay_fast() -> None:
    n = 1_000_000
    rng = random.Random(1)
    blocks = []
    for i in range(n):
        blocks.append((i * 512, 512, "+-"[i % 2]))
    bm = BlockMap.from_blocks(blocks)
    assert len(bm) == n and bm.count_of("-") == n // 2
    # 10,000 random updates and lookups must not scan the map (O(n) each would take minutes)
    for _ in range(10_000):
        pos = rng.randrange(n) * 512
        bm.set_status(pos, 512, rng.choice(STATUSES))
        bm.block_at(rng.randrange(n * 512))
    assert bm.end == n * 512
