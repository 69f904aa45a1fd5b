"""The LUKS1/LUKS2 planner against volumes made by ``cryptsetup luksFormat``: its areas against
what ``cryptsetup luksDump`` says and reads, its fallback to LUKS2's second header, the
signature contract, damaged headers, and the planner end to end on a GPT disk."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import WriteError
from engine.metadata import luks, signatures
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P0, P2, P3, P4, Plan, Volume
from tests.fsimages import ImageReader, coverage, make_disk, place, read_logged
from tests.test_metadata_signatures import Disk

MiB = 1 << 20
KEY = b"correct horse battery staple"
FAST = ["--batch-mode", "--pbkdf-force-iterations", "1000"]


# ------------------------------------------------------------------ images and oracles
def luks_format(path: Path, kind: str, size: int, *extra: str) -> Path:
    """A sparse ``size``-byte file formatted as ``kind`` (luks1/luks2) with two key slots."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    keyfile, other = path.with_suffix(".key"), path.with_suffix(".key2")
    keyfile.write_bytes(KEY)
    other.write_bytes(KEY[::-1])
    pbkdf = ["--pbkdf", "pbkdf2"] if kind == "luks2" else []
    cs = ["cryptsetup", *FAST, *pbkdf]
    subprocess.run(
        [*cs, "luksFormat", "--type", kind, "--key-file", str(keyfile), *extra, str(path)],
        check=True, capture_output=True,
    )
    if "--header" not in extra:
        subprocess.run(
            [*cs, "luksAddKey", "--key-file", str(keyfile), str(path), str(other)],
            check=True, capture_output=True,
        )
    return path


def dump_json(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["cryptsetup", "luksDump", "--dump-json-metadata", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    meta: dict[str, Any] = json.loads(out)
    return meta


def dump_luks1(path: Path) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """``luksDump`` of LUKS1: payload offset (bytes), key bytes, enabled slot -> (offset,
    stripes)."""
    out = subprocess.run(
        ["cryptsetup", "luksDump", str(path)], capture_output=True, text=True, check=True
    ).stdout
    payload = int(re.search(r"Payload offset:\s*(\d+)", out).group(1)) * 512  # type: ignore[union-attr]
    key_bytes = int(re.search(r"MK bits:\s*(\d+)", out).group(1)) // 8  # type: ignore[union-attr]
    slots = {}
    for m in re.finditer(
        r"Key Slot (\d): ENABLED.*?Key material offset:\s*(\d+).*?AF stripes:\s*(\d+)", out, re.S
    ):
        slots[int(m.group(1))] = (int(m.group(2)) * 512, int(m.group(3)))
    return payload, key_bytes, slots


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("luks")
    return {
        "luks2": luks_format(work / "luks2.img", "luks2", 256 * MiB),
        "luks2-64k": luks_format(
            work / "luks2-64k.img", "luks2", 64 * MiB,
            "--luks2-metadata-size", "64k", "--luks2-keyslots-size", "4m",
        ),
        "luks1": luks_format(work / "luks1.img", "luks1", 256 * MiB),
    }


def plan_image(
    path: Path, bad: Sequence[tuple[int, int]] = (), patch: bytes | None = None
) -> tuple[bool, Plan, Volume]:
    """Probe and plan ``path`` (or ``patch``, its bytes changed) as a bare volume."""
    if patch is None:
        read = ImageReader(path, bad=bad)
        size = read.size
    else:
        size = len(patch)

        def read(pos: int, n: int) -> bytes | None:  # type: ignore[misc]
            return patch[pos : pos + n] if pos + n <= size else None

    plan = Plan(size)
    vol = Volume(read, 0, size, plan)
    found = luks.probe(vol)
    if found:
        luks.plan(vol)
    return found, plan, vol


def inside(plan: Plan, start: int, size: int, tier: int) -> float:
    """The share of ``[start, start+size)`` planned in exactly ``tier``."""
    return coverage([(start, size)], plan.ranges(tier, tier))


def header_size(meta: dict[str, Any]) -> int:
    return int(meta["config"]["json_size"]) + 4096


# ------------------------------------------------------------------ against luksDump
@pytest.mark.parametrize("name", ["luks2", "luks2-64k"])
def test_luks2_plan_matches_luksdump(images: dict[str, Path], name: str) -> None:
    path = images[name]
    meta = dump_json(path)
    hsize = header_size(meta)
    found, plan, _ = plan_image(path)
    assert found and plan.notes == []
    assert inside(plan, 0, hsize, P0) == 1.0  # binary header + JSON area in use
    assert inside(plan, hsize, hsize, P3) == 1.0  # the second copy: redundancy
    assert inside(plan, hsize, hsize, P0) == 0.0
    assert len(meta["keyslots"]) == 2 == plan.counts["luks:keyslots"]
    slot_ends = []
    for slot in meta["keyslots"].values():
        off, size = int(slot["area"]["offset"]), int(slot["area"]["size"])
        assert inside(plan, off, size, P0) == 1.0, slot
        slot_ends.append(off + size)
    (segment,) = meta["segments"].values()
    data = int(segment["offset"])
    assert segment["size"] == "dynamic"
    assert plan.ranges(P4, P4) == [(data, path.stat().st_size)]
    # the unused rest of the key slots area is not planned at all
    ks_end = 2 * hsize + int(meta["config"]["keyslots_size"])
    assert coverage([(max(slot_ends), ks_end - max(slot_ends))], plan.ranges(P4)) == 0.0


def test_luks1_plan_matches_luksdump(images: dict[str, Path]) -> None:
    path = images["luks1"]
    payload, key_bytes, slots = dump_luks1(path)
    found, plan, _ = plan_image(path)
    assert found and plan.notes == []
    assert sorted(slots) == [0, 1] and plan.counts["luks:keyslots"] == 2
    assert inside(plan, 0, 592, P0) == 1.0
    for off, stripes in slots.values():
        size = -(-key_bytes * stripes // 512) * 512
        assert inside(plan, off, size, P0) == 1.0
    assert plan.ranges(P4, P4) == [(payload, path.stat().st_size)]
    # the six disabled slots' room between the last area and the payload is not planned
    last = max(off + -(-key_bytes * st // 512) * 512 for off, st in slots.values())
    assert coverage([(last + 4096, payload - last - 4096)], plan.ranges(P4)) == 0.0


@pytest.mark.fuse
@pytest.mark.parametrize("name", ["luks2", "luks2-64k", "luks1"])
def test_what_luksdump_reads_is_planned_in_p0_p3(
    images: dict[str, Path], name: str, tmp_path: Path
) -> None:
    path = images[name]
    reads = read_logged(path, ["cryptsetup", "luksDump", "{dev}"], tmp_path, loop=True)
    assert sum(n for _, n in reads) >= 1024, reads  # it did read the header
    _, plan, _ = plan_image(path)
    share = coverage(reads, plan.ranges(P3))
    assert share >= 0.99, (share, sorted(set(reads)))


@pytest.mark.parametrize("name", ["luks2", "luks1"])
def test_p0_p2_is_a_tiny_share_of_the_volume(images: dict[str, Path], name: str) -> None:
    path = images[name]
    _, plan, _ = plan_image(path)
    size = path.stat().st_size
    p2 = plan.size_of(P2)
    assert 2 * 256_000 <= p2 <= size // 200, p2  # the key material, and < 0.5 % in all
    assert plan.size_of(P4) >= size - 17 * MiB  # the payload is planned as used data


# ------------------------------------------------------------------ fallbacks and damage
def rewrite_header(data: bytearray, off: int, meta: bytes | None = None,
                   seqid: int | None = None) -> None:  # fmt: skip
    """Change the LUKS2 header copy at ``off`` (JSON text, seqid) and fix its checksum."""
    hsize = struct.unpack_from(">Q", data, off + 8)[0]
    if meta is not None:
        data[off + 4096 : off + hsize] = meta.ljust(hsize - 4096, b"\0")[: hsize - 4096]
    if seqid is not None:
        struct.pack_into(">Q", data, off + 16, seqid)
    data[off + 448 : off + 512] = bytes(64)
    digest = hashlib.sha256(bytes(data[off : off + hsize])).digest()
    data[off + 448 : off + 448 + len(digest)] = digest


def test_luks2_unreadable_primary_is_planned_from_the_second_header(
    images: dict[str, Path],
) -> None:
    path = images["luks2"]
    meta = dump_json(path)
    hsize = header_size(meta)
    found, plan, _ = plan_image(path, bad=[(0, 4096)])
    assert found
    assert any("using the second header" in n for n in plan.notes), plan.notes
    assert any("unreadable" in n for n in plan.notes), plan.notes
    assert inside(plan, hsize, hsize, P0) == 1.0  # the copy in use
    assert inside(plan, 0, hsize, P3) == 1.0
    for slot in meta["keyslots"].values():
        assert inside(plan, int(slot["area"]["offset"]), int(slot["area"]["size"]), P0) == 1.0
    assert plan.ranges(P4, P4) == [(int(meta["segments"]["0"]["offset"]), path.stat().st_size)]


def test_luks2_primary_failing_its_checksum_or_older_gives_way(images: dict[str, Path]) -> None:
    path = images["luks2-64k"]
    hsize = header_size(dump_json(path))
    data = bytearray(path.read_bytes())
    data[4096 + 10] ^= 0x20  # a byte of the primary's JSON: its checksum no longer holds
    found, plan, _ = plan_image(path, patch=bytes(data))
    assert found and inside(plan, hsize, hsize, P0) == 1.0
    assert any("checksum does not match" in n for n in plan.notes), plan.notes
    assert plan.counts["luks:keyslots"] == 2
    data = bytearray(path.read_bytes())
    rewrite_header(data, hsize, seqid=1000)  # the second copy is newer: cryptsetup uses it
    found, plan, _ = plan_image(path, patch=bytes(data))
    assert found and inside(plan, hsize, hsize, P0) == 1.0
    assert any("newer" in n for n in plan.notes), plan.notes


def test_luks1_unreadable_header_gives_a_note_and_no_plan(images: dict[str, Path]) -> None:
    path = images["luks1"]
    found, plan, vol = plan_image(path, bad=[(0, 4096)])
    assert not found and not signatures.luks(vol)
    luks.plan(vol)  # even asked to, it plans nothing and says why
    assert plan.areas == []
    assert any("no usable LUKS header" in n for n in plan.notes), plan.notes
    read = ImageReader(path, bad=[(0, 4096)])
    whole = plan_disk(read, read.size)
    assert whole.filesystems == [] and any("no known filesystem" in n for n in whole.notes)


def test_detached_header_plans_no_payload(tmp_path: Path) -> None:
    data = tmp_path / "data.img"
    header = tmp_path / "header.img"
    luks_format(data, "luks2", 8 * MiB, "--header", str(header))
    found, plan, _ = plan_image(header)
    assert found and plan.counts["luks:keyslots"] == 1
    assert plan.size_of(P4, P4) == 0
    assert any("detached header" in n for n in plan.notes), plan.notes


# ------------------------------------------------------------------ contract and robustness
def check_contract(disk: Disk) -> bool:
    """probe => signature; a failing probe reads exactly what the failing test reads."""
    disk.reads.clear()
    found = luks.probe(Volume(disk.read, 0, disk.size, Plan(disk.size)))
    probe_reads = list(disk.reads)
    disk.reads.clear()
    passed = signatures.luks(Volume(disk.read, 0, disk.size, Plan(disk.size)))
    assert passed or not found
    if not found and not passed:
        assert disk.reads == probe_reads
    return found


@pytest.fixture(scope="module")
def heads(images: dict[str, Path]) -> dict[str, bytes]:
    """The first 8 MiB of each image: headers, key slot areas and the start of the payload."""
    out = {}
    for name, path in images.items():
        with open(path, "rb") as fh:
            out[name] = fh.read(8 * MiB)
    return out


@pytest.fixture(scope="module")
def header_sectors(heads: dict[str, bytes]) -> list[bytes]:
    """Real first sectors: LUKS1, LUKS2 primaries and second headers."""
    out = []
    for name in ("luks1", "luks2", "luks2-64k"):
        data = heads[name]
        out.append(data[:512])
        if name != "luks1":
            hsize = struct.unpack_from(">Q", data, 8)[0]
            out.append(data[hsize : hsize + 512])
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_probe_keeps_the_signature_contract(header_sectors: list[bytes], data: st.DataObject
                                            ) -> None:  # fmt: skip
    places = [0, *signatures.LUKS2_SECOND_OFFSETS]
    sector = st.one_of(
        st.sampled_from(header_sectors),
        st.builds(lambda s, m: m + s[6:], st.binary(min_size=512, max_size=512),
                  st.sampled_from([signatures.LUKS_MAGIC, signatures.LUKS2_SECOND_MAGIC])),
        st.binary(min_size=512, max_size=512),
    )  # fmt: skip
    planted = data.draw(st.dictionaries(st.sampled_from(places), sector, max_size=4))
    bad = data.draw(st.sets(st.sampled_from(places), max_size=3))
    check_contract(Disk(32 * MiB, planted, bad))


def test_real_volumes_keep_the_contract(images: dict[str, Path], heads: dict[str, bytes]) -> None:
    for name, path in images.items():
        for blank in (None, (0, 4096)):
            raw = bytearray(heads[name])
            if blank:
                raw[blank[0] : blank[1]] = bytes(blank[1] - blank[0])
            found = check_contract(Disk(path.stat().st_size, {0: bytes(raw)}, set()))
            assert found == (blank is None or name != "luks1"), (name, blank)
    assert not check_contract(Disk(32 * MiB, {}, set()))


def test_engine_errors_raised_by_the_reader_are_not_swallowed(heads: dict[str, bytes]) -> None:
    """A write error while rescuing what the probe reads ends the planning (the planner's
    rule): the probe lets it through instead of noting it."""
    data = heads["luks2"]

    def read(pos: int, n: int) -> bytes | None:
        if pos >= 16384:
            raise WriteError("target full")
        return data[pos : pos + n]

    vol = Volume(read, 0, len(data), Plan(len(data)))
    with pytest.raises(WriteError):
        luks.probe(vol)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    | st.sampled_from(["dynamic", "0", "4096", "99999999999999999999", "-1", "\u00b2", "1e3"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10,
)  # fmt: skip


def mutate(meta: object, draw: Callable[[st.SearchStrategy[Any]], Any]) -> object:
    """``meta`` with some values replaced by random JSON values."""
    if isinstance(meta, dict):
        return {k: draw(json_values) if draw(st.integers(0, 5)) == 0 else mutate(v, draw)
                for k, v in meta.items()}  # fmt: skip
    return meta


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_headers_never_raise(heads: dict[str, bytes], data: st.DataObject) -> None:
    """Random JSON values (with a valid checksum) and random phdr bytes: the plan stays on the
    volume, and the key slots it plans stay in P0; nothing raises."""
    base = bytearray(heads["luks2-64k"])
    meta = mutate(json.loads(base[4096:65536].split(b"\0")[0]), data.draw)
    rewrite_header(base, 0, json.dumps(meta).encode())
    base[65536 : 2 * 65536] = bytes(65536)  # no second header to fall back on
    _, plan, _ = plan_image(Path(), patch=bytes(base))
    assert all(a.start >= 0 and a.end <= len(base) for a in plan.areas)
    assert all(a.tier == P0 for a in plan.areas if "key slot" in a.what)
    phdr = bytearray(heads["luks1"][: 4 * MiB])
    for _ in range(data.draw(st.integers(1, 20))):
        phdr[data.draw(st.integers(8, 591))] = data.draw(st.integers(0, 255))
    found, plan, _ = plan_image(Path(), patch=bytes(phdr))
    assert found and all(a.start >= 0 and a.end <= len(phdr) for a in plan.areas)


# ------------------------------------------------------------------ end to end
def test_planner_finds_luks_partitions_on_a_gpt_disk(images: dict[str, Path],
                                                     tmp_path: Path) -> None:  # fmt: skip
    disk = tmp_path / "disk.img"
    layout = "label: gpt\nstart=2048, size=131072\nstart=133120, size=131072\n"
    (p1, s1), (p2, s2) = make_disk(disk, layout, 160 * MiB)
    l2 = luks_format(tmp_path / "p1.img", "luks2", s1)
    l1 = luks_format(tmp_path / "p2.img", "luks1", s2)
    place(disk, l2, p1)
    place(disk, l1, p2)
    read = ImageReader(disk)
    plan = plan_disk(read, read.size)
    assert plan.filesystems == [(p1, s1, "luks"), (p2, s2, "luks")], plan.notes
    assert plan.counts["luks:keyslots"] == 4 and plan.counts["luks:segments"] == 2
    meta = dump_json(l2)
    for slot in meta["keyslots"].values():
        assert inside(plan, p1 + int(slot["area"]["offset"]), int(slot["area"]["size"]), P0) == 1
    payload, _, slots = dump_luks1(l1)
    for off, _stripes in slots.values():
        assert inside(plan, p2 + off, 4096, P0) == 1.0
    assert inside(plan, p2 + payload, s2 - payload - 64 * 1024, P4) == 1.0
    assert not [n for n in plan.notes if "luks" in n], plan.notes
