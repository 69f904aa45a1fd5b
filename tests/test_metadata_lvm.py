"""The LVM2 planner (engine/metadata/lvm.py) on physical volumes made by lvm2 itself.

``pvcreate`` and ``vgcreate`` make the PV on a loop device of a sparse file, and
``vgcfgrestore`` gives it logical volumes (no device-mapper is needed for that; nothing is
activated). lvm2 runs with a configuration of its own (``LVM_SYSTEM_DIR``: no backups, no
archives, no devices file, no hints) and only ever sees our loop device, so the host's LVM
state is not touched; the volume group lives only in the image file, and the loop device is
detached in ``finally``. What the planner finds is compared with what ``pvs`` and ``pvck``
report, and with the bytes ``pvs``/``vgs``/``lvs`` read (through a read-logging FUSE file).
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metadata import lvm, lvm_text, signatures
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P0, P2, P3, Plan, Volume
from tests.conftest import run_ddfs
from tests.fsimages import ImageReader, coverage, make_disk, outside, place, read_logged
from tests.mountproc import live_mount, status, wait_for

MiB = 1 << 20
EXTENT = 4 * MiB
PV_SIZE = 64 * MiB
VG = "ddfs_test_vg"
LVM_CONF = """
devices { use_devicesfile = 0 hints = "none" obtain_device_list_from_udev = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 }
global { use_lvmpolld = 0 }
"""

JSON = ("--reportformat", "json", "--units", "b", "--nosuffix")
#: the logical volumes vgcfgrestore gives the VG: name -> [(first extent on the PV, extents)]
LVS = {"data": [(2, 5)], "split": [(8, 2), (11, 2)]}


@dataclass
class Pv:
    """A PV image and what lvm2 says about it."""

    image: Path
    pe_start: int
    mda_size: int
    mda_count: int
    uuid: str
    headers: str  # pvck --dump headers
    mda_starts: list[int]
    text: tuple[int, int]  # (pos, size) of the current metadata text in the first area
    lv_sizes: dict[str, int]


class Lvm:
    """lvm2 commands that only see ``dev`` and keep their state in ``conf``."""

    def __init__(self, conf: Path, dev: str):
        conf.mkdir(exist_ok=True)
        (conf / "lvm.conf").write_text(LVM_CONF)
        self.env = {**os.environ, "LVM_SYSTEM_DIR": str(conf), "LVM_SUPPRESS_FD_WARNINGS": "1"}
        self.dev = dev

    def __call__(self, cmd: str, *args: str, check: bool = True) -> str:
        where = ["--devices", self.dev]
        if cmd == "pvck":  # pvck does not take --devices in lvm2 2.03.16
            where = ["--config", f'devices {{ filter = [ "a|^{self.dev}$|", "r|.*|" ] }}']
        done = subprocess.run(
            [cmd, *where, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{cmd} {args}: {done.stderr}")
        return done.stdout


def logical_volumes(lvs: dict[str, list[tuple[int, int]]]) -> str:
    """A ``logical_volumes`` section with linear segments on pv0."""
    out = ["\tlogical_volumes {"]
    for n, (name, segs) in enumerate(lvs.items()):
        out += [f"\t\t{name} {{", f'\t\t\tid = "lvlvlv-{n:04d}-0000-0000-0000-0000-000000"']
        out += ['\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]', "\t\t\tflags = []"]
        out.append(f"\t\t\tsegment_count = {len(segs)}")
        first = 0
        for i, (pe, count) in enumerate(segs, 1):
            out += [f"\t\t\tsegment{i} {{", f"\t\t\t\tstart_extent = {first}"]
            out += [f"\t\t\t\textent_count = {count}", '\t\t\t\ttype = "striped"']
            out += ["\t\t\t\tstripe_count = 1", f'\t\t\t\tstripes = ["pv0", {pe}]', "\t\t\t}"]
            first += count
        out.append("\t\t}")
    return "\n".join([*out, "\t}", ""])


def make_pv(
    work: Path,
    name: str,
    copies: int,
    lvs: dict[str, list[tuple[int, int]]],
    size: int = PV_SIZE,
    extent: int = EXTENT,
    vg: str = VG,
) -> Pv:
    """A PV of ``size`` with ``copies`` metadata areas in the VG ``vg`` with ``lvs``."""
    image = work / f"{name}.img"
    with open(image, "wb") as fh:
        fh.truncate(size)
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        run = Lvm(work / f"{name}-lvm", dev)
        run("pvcreate", "-q", "--pvmetadatacopies", str(copies), dev)
        run("vgcreate", "-q", "-s", f"{extent // 1024}k", vg, dev)
        backup = work / f"{name}-vg.txt"
        run("vgcfgbackup", "-q", "-f", str(backup), vg)
        text = backup.read_text()
        end = text.rindex("}")  # the volume group's closing brace
        backup.write_text(text[:end] + logical_volumes(lvs) + text[end:])
        run("vgcfgrestore", "-q", "-f", str(backup), vg)
        fields = "pv_uuid,pe_start,pv_mda_size,pv_mda_count"
        report = json.loads(run("pvs", *JSON, "-o", fields, dev))["report"][0]["pv"][0]
        lvs_report = json.loads(run("lvs", *JSON, "-o", "lv_name,lv_size"))["report"][0]["lv"]
        headers = run("pvck", "--dump", "headers", dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
    text_at = re.search(
        r"mda_header_1.raw_locn\[0\].size (\d+).*?metadata text at (\d+)", headers, re.S
    )
    assert text_at, headers
    return Pv(
        image,
        int(report["pe_start"]),
        int(report["pv_mda_size"]),
        int(report["pv_mda_count"]),
        report["pv_uuid"].replace("-", ""),
        headers,
        [int(m) for m in re.findall(r"mda_header_\d at (\d+)", headers)],
        (int(text_at.group(2)), int(text_at.group(1))),
        {lv["lv_name"]: int(lv["lv_size"]) for lv in lvs_report},
    )


@pytest.fixture(scope="module")
def pvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pv]:
    """``two``: two metadata areas, an ext4 in LV ``data``; ``one``: one area, no filesystem."""
    work = tmp_path_factory.mktemp("lvm")
    made = {"two": make_pv(work, "two", 2, LVS), "one": make_pv(work, "one", 1, {"data": [(1, 2)]})}
    tree = work / "tree"
    for i in range(20):
        (tree / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{i % 4}" / f"f{i}").write_bytes(os.urandom(i * 1000))
    fs = work / "lv.ext4"
    size = LVS["data"][0][1] * EXTENT
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(fs), f"{size // 1024}k"], check=True
    )
    two = made["two"]
    place(two.image, fs, two.pe_start + LVS["data"][0][0] * EXTENT)
    return made


def plan_pv(
    pv: Pv, bad: Iterable[tuple[int, int]] = (), patch: dict[int, bytes] | None = None
) -> Plan:
    return plan_disk(ImageReader(pv.image, bad, patch), PV_SIZE)


def in_tier(plan: Plan, pos: int, size: int, max_tier: int, min_tier: int = 0) -> bool:
    return not outside([(pos, size)], plan.ranges(max_tier, min_tier))


def lvm_areas(plan: Plan, max_tier: int) -> int:
    """Bytes of the LVM module's own areas up to ``max_tier``."""
    from engine.map.ranges import merge

    spans = merge(
        (a.start, a.end) for a in plan.areas if a.what.startswith("LVM") and a.tier <= max_tier
    )
    return sum(e - s for s, e in spans)


# ------------------------------------------------------------------ real PVs
def test_label_headers_and_text_are_p0_where_pvck_finds_them(pvs: dict[str, Pv]) -> None:
    pv = pvs["two"]
    assert pv.mda_count == 2 and len(pv.mda_starts) == 2
    assert "label_header at 512" in pv.headers
    plan = plan_pv(pv)
    assert (0, PV_SIZE, "lvm") in plan.filesystems
    assert in_tier(plan, 512, 512, P0)  # label and PV header
    assert in_tier(plan, pv.mda_starts[0], 512, P0)
    assert in_tier(plan, *pv.text, P0)
    # the first area (pvs: its size) is P0 or P3 from end to end; the second is P3
    assert in_tier(plan, pv.mda_starts[0], pv.mda_size, P3)
    assert pv.mda_starts[1] >= PV_SIZE - 2 * MiB  # at the end of the PV
    assert in_tier(plan, pv.mda_starts[1], PV_SIZE - pv.mda_starts[1], P3, P3)
    # pvck's CRCs are the ones the module computes
    data = pv.image.read_bytes()
    crc = int(re.search(r"label_header.crc (0x[0-9a-f]+)", pv.headers).group(1), 16)
    assert lvm.calc_crc(data[512 + 20 : 1024]) == crc
    mda = pv.mda_starts[0]
    crc = int(re.search(r"mda_header_1.checksum (0x[0-9a-f]+)", pv.headers).group(1), 16)
    assert lvm.calc_crc(data[mda + 4 : mda + 512]) == crc
    assert plan.counts["lvm:logical volumes"] == 2
    assert plan.counts["lvm:logical volumes planned"] == 1


def test_the_ext4_in_the_lv_is_planned(pvs: dict[str, Pv]) -> None:
    pv = pvs["two"]
    plan = plan_pv(pv)
    start = pv.pe_start + LVS["data"][0][0] * EXTENT
    size = pv.lv_sizes["data"]
    assert (start, size, "ext") in plan.filesystems
    assert in_tier(plan, start + 1024, 1024, P0)  # the ext superblock
    assert plan.counts["ext:files"] == 20
    split = [n for n in plan.notes if f"{VG}-split" in n]
    assert split and "not contiguous" in split[0], plan.notes


def test_what_pvs_vgs_and_lvs_read_is_planned(pvs: dict[str, Pv], tmp_path: Path) -> None:
    pv = pvs["two"]

    def tools(dev: str) -> None:
        run = Lvm(tmp_path / "conf", dev)
        out = run("pvs", "--units", "b", "-o", "+pv_mda_size,pe_start", dev)
        assert VG in out
        assert VG in run("vgs") and "data" in run("lvs")

    reads = read_logged(pv.image, tools, tmp_path, loop=True)
    plan = plan_pv(pv)
    assert sum(n for _, n in reads) >= 128 * 1024
    assert coverage(reads, plan.ranges(P3)) >= 0.99, outside(reads, plan.ranges(P3))
    lvm_only = [(a.start, a.end) for a in plan.areas if a.what.startswith("LVM")]
    assert coverage(reads, lvm_only) >= 0.99, outside(reads, lvm_only)


def test_lvm_p0_to_p2_is_a_tiny_share_of_the_pv(pvs: dict[str, Pv]) -> None:
    plan = plan_pv(pvs["two"])
    p2 = lvm_areas(plan, P2)
    assert 0 < p2 <= 16 * 1024, p2
    assert p2 / PV_SIZE < 0.001
    assert lvm_areas(plan, P3) <= 2 * pvs["two"].mda_size + 8192


@pytest.mark.parametrize("damage", ["header unreadable", "text unreadable", "text corrupt"])
def test_the_second_area_when_the_first_is_lost(pvs: dict[str, Pv], damage: str) -> None:
    pv = pvs["two"]
    first, second = pv.mda_starts
    bad, patch = [], {}
    if damage == "header unreadable":
        bad = [(first, first + 512)]
    elif damage == "text unreadable":
        bad = [(pv.text[0] + 100, pv.text[0] + 101)]
    else:
        patch = {pv.text[0] + 20: b"#"}
    plan = plan_pv(pv, bad, patch)
    start = pv.pe_start + LVS["data"][0][0] * EXTENT
    assert (start, pv.lv_sizes["data"], "ext") in plan.filesystems, plan.notes
    assert in_tier(plan, second, 512, P0)
    assert any("using metadata area 2" in n for n in plan.notes), plan.notes
    reason = {"header unreadable": "header unreadable", "text unreadable": "text unreadable"}
    assert any(reason.get(damage, "checksum wrong") in n for n in plan.notes), plan.notes


def test_one_area_lost_means_notes_not_lvs(pvs: dict[str, Pv]) -> None:
    pv = pvs["one"]
    assert pv.mda_count == 1
    plan = plan_pv(pv)
    assert plan.counts["lvm:logical volumes planned"] == 1
    assert any(f"{VG}-data: no known filesystem" in n for n in plan.notes), plan.notes
    lost = plan_pv(pv, [(pv.mda_starts[0], pv.mda_starts[0] + 512)])
    assert (0, PV_SIZE, "lvm") in lost.filesystems
    assert "lvm:logical volumes planned" not in lost.counts
    assert any("no readable volume group metadata" in n for n in lost.notes), lost.notes
    assert in_tier(lost, pv.mda_starts[0], 512, P0)


def test_a_wrapped_text_is_read_from_both_ends(pvs: dict[str, Pv], tmp_path: Path) -> None:
    """The current text moved to wrap around the circular buffer (as lvm2 writes it after
    many updates); lvm2 reads the result, and so does the planner."""
    pv = pvs["one"]
    image = tmp_path / "wrapped.img"
    data = bytearray(pv.image.read_bytes())
    mda = pv.mda_starts[0]
    header = data[mda : mda + 512]
    size = struct.unpack_from("<Q", header, 32)[0]
    pos, length = pv.text
    text = bytes(data[pos : pos + length])
    offset = size - 1024  # 1 KiB before the end of the area: the rest after the header
    data[mda + offset : mda + size] = text[:1024]
    data[mda + 512 : mda + 512 + length - 1024] = text[1024:]
    struct.pack_into("<Q", header, 40, offset)
    struct.pack_into("<I", header, 0, lvm.calc_crc(bytes(header[4:])))
    data[mda : mda + 512] = header
    image.write_bytes(data)
    dev = subprocess.run(
        ["losetup", "-r", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        assert "data" in Lvm(tmp_path / "conf", dev)("lvs", "-o", "lv_name", VG)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
    plan = plan_disk(ImageReader(image), PV_SIZE)
    assert plan.counts["lvm:logical volumes planned"] == 1, plan.notes
    assert in_tier(plan, mda + offset, 1024, P0)
    assert in_tier(plan, mda + 512, length - 1024, P0)


def test_a_gpt_partition_holding_the_pv(pvs: dict[str, Pv], tmp_path: Path) -> None:
    pv = pvs["two"]
    disk = tmp_path / "disk.img"
    ((p_start, p_size),) = make_disk(
        disk, f"label: gpt\nstart=2048, size={PV_SIZE // 512}\n", PV_SIZE + 2 * MiB
    )
    place(disk, pv.image, p_start)
    plan = plan_disk(ImageReader(disk), PV_SIZE + 2 * MiB)
    lv_start = p_start + pv.pe_start + LVS["data"][0][0] * EXTENT
    assert (p_start, p_size, "lvm") in plan.filesystems
    assert (lv_start, pv.lv_sizes["data"], "ext") in plan.filesystems
    assert in_tier(plan, p_start + 512, 512, P0)
    assert in_tier(plan, lv_start + 1024, 1024, P0)


def test_a_bad_label_checksum_is_noted_and_the_label_used(pvs: dict[str, Pv]) -> None:
    pv = pvs["two"]
    plan = plan_pv(pv, patch={512 + 400: b"\x01"})  # past the PV header, inside the CRC
    assert any("label checksum wrong" in n for n in plan.notes), plan.notes
    start = pv.pe_start + LVS["data"][0][0] * EXTENT
    assert (start, pv.lv_sizes["data"], "ext") in plan.filesystems


def test_a_pv_inside_an_lv_is_planned_too(pvs: dict[str, Pv], tmp_path: Path) -> None:
    """A guest's PV in an LV (a VM disk): the inner VG's LVs are planned as well."""
    outer = pvs["one"]
    first, extents = 1, 2  # the LV of pvs['one']
    inner = make_pv(tmp_path, "inner", 1, {"deep": [(1, 3)]}, extents * EXTENT, MiB, "inner_vg")
    image = tmp_path / "outer.img"
    image.write_bytes(outer.image.read_bytes())
    lv_start = outer.pe_start + first * EXTENT
    place(image, inner.image, lv_start)
    plan = plan_disk(ImageReader(image), PV_SIZE)
    assert (lv_start, extents * EXTENT, "lvm") in plan.filesystems, plan.notes
    assert plan.counts["lvm:logical volumes planned"] == 2
    assert any("inner_vg-deep: no known filesystem" in n for n in plan.notes), plan.notes
    assert in_tier(plan, lv_start + inner.text[0], inner.text[1], P0)


# ------------------------------------------------------------------ the text format
def test_the_text_parser_reads_what_lvm_writes() -> None:
    tree = lvm_text.parse(
        'vg { # a comment\n id = "a-b" n = -12 f = 1.5 e = []\n'
        's = "say \\"hi\\" \\\\ # not a comment"\n'
        'l = [ "pv0", 0, "pv1", 7 ] nested { deeper { x = 1 } } }\n'
        'contents = "Text Format Volume Group"\nversion = 1\0garbage after the NUL {{{'
    )
    vg = lvm_text.section(tree, "vg")
    assert vg is not None
    assert lvm_text.string(vg, "id") == "a-b"
    assert lvm_text.integer(vg, "n") == -12 and vg["f"] == 1.5 and vg["e"] == []
    assert lvm_text.string(vg, "s") == 'say "hi" \\ # not a comment'
    assert vg["l"] == ["pv0", 0, "pv1", 7]
    assert vg["nested"] == {"deeper": {"x": 1}}
    assert lvm_text.integer(tree, "version") == 1
    assert lvm_text.integer(vg, "id") is None and lvm_text.section(vg, "l") is None


@pytest.mark.parametrize(
    "text", ["vg {", "vg { x = }", "vg { = 1 }", "a = [1, 2", 'a = "open', "x y", "[" * 100]
)
def test_text_errors_are_text_errors(text: str) -> None:
    with pytest.raises(lvm_text.TextError):
        lvm_text.parse(text)


def test_deep_nesting_is_refused_not_recursed() -> None:
    with pytest.raises(lvm_text.TextError):
        lvm_text.parse("a = " + "[" * 10_000 + "]" * 10_000)
    with pytest.raises(lvm_text.TextError):
        lvm_text.parse("s { " * 10_000 + "}" * 10_000)


def lv(*segments: str) -> lvm_text.Section:
    body = "".join(f"segment{i} {{ {s} }}\n" for i, s in enumerate(segments, 1))
    tree = lvm_text.section(lvm_text.parse(f"lv {{ {body} }}"), "lv")
    assert tree is not None
    return tree


def linear(first: int, count: int, pv: str, pe: int) -> str:
    return (
        f'start_extent = {first} extent_count = {count} type = "striped" stripe_count = 1 '
        f'stripes = ["{pv}", {pe}]'
    )


def test_which_lvs_are_one_range_of_the_pv() -> None:
    assert lvm.lv_range(lv(linear(0, 5, "pv0", 3)), "pv0") == (3, 5)
    # segments listed out of order, contiguous on the PV: one range
    assert lvm.lv_range(lv(linear(4, 2, "pv0", 14), linear(0, 4, "pv0", 10)), "pv0") == (10, 6)
    assert lvm.lv_range(lv(linear(0, 5, "pv1", 3)), "pv0") is None
    why = lvm.lv_range(lv(linear(0, 4, "pv0", 10), linear(4, 2, "pv0", 20)), "pv0")
    assert isinstance(why, str) and "not contiguous" in why
    why = lvm.lv_range(lv(linear(0, 4, "pv0", 10), linear(4, 2, "pv1", 14)), "pv0")
    assert isinstance(why, str) and "other PVs" in why
    striped = 'start_extent = 0 extent_count = 4 type = "striped" stripe_count = 2 '
    why = lvm.lv_range(lv(striped + 'stripes = ["pv0", 0, "pv1", 0]'), "pv0")
    assert isinstance(why, str) and "2 stripes" in why
    why = lvm.lv_range(lv('start_extent = 0 extent_count = 4 type = "thin" thin_pool = "p"'), "pv0")
    assert isinstance(why, str) and "thin" in why
    assert lvm.lv_range(lv(), "pv0") == "no segments"


# ------------------------------------------------------------------ contract and robustness
class Head:
    """The first 64 KiB of a disk, some sectors unreadable; records every read."""

    def __init__(self, data: bytes, bad: set[int]):
        self.data = data
        self.bad = bad
        self.reads: list[tuple[int, int]] = []

    def __call__(self, pos: int, size: int) -> bytes | None:
        self.reads.append((pos, size))
        if any(pos <= b * 512 < pos + size for b in self.bad):
            return None
        return self.data[pos : pos + size]


def label_sector(sector: int, number: int, offset: int, rest: bytes) -> bytes:
    raw = bytearray(rest)
    raw[0:8] = signatures.LVM_LABEL
    struct.pack_into("<QII", raw, 8, number, 0, offset)
    raw[24:32] = signatures.LVM_TYPE
    return bytes(raw)


def check_contract(head: Head) -> bool:
    vol = Volume(head, 0, len(head.data), Plan(len(head.data)))
    found = lvm.probe(vol)
    probe_reads = list(head.reads)
    head.reads.clear()
    passed = signatures.lvm(Volume(head, 0, len(head.data), Plan(len(head.data))))
    assert passed or not found
    if not found:
        assert head.reads == probe_reads
    return found


@settings(max_examples=300, deadline=None)
@given(
    sectors=st.dictionaries(
        st.integers(0, 3),
        st.one_of(
            st.binary(min_size=512, max_size=512),
            st.builds(
                label_sector,
                st.integers(0, 3),
                st.integers(0, 4),
                st.sampled_from([32, 0, 400, 1 << 31]),
                st.one_of(st.binary(min_size=512, max_size=512), st.just(bytes(512))),
            ),
        ),
        max_size=4,
    ),
    bad=st.sets(st.integers(0, 8), max_size=2),
)
def test_probe_keeps_the_signature_contract(sectors: dict[int, bytes], bad: set[int]) -> None:
    """probe => signatures.lvm, and a failing probe reads what the signature reads; a probe
    that matches is planned without raising."""
    data = bytearray(64 * 1024)
    for s, raw in sectors.items():
        data[s * 512 : s * 512 + 512] = raw
    head = Head(bytes(data), bad)
    if check_contract(head):
        vol = Volume(head, 0, len(data), Plan(len(data)))
        assert lvm.probe(vol)
        lvm.plan(vol)
        assert any(a.what == "LVM label and PV header" for a in vol.plan.areas)


def test_real_pvs_keep_the_contract(pvs: dict[str, Pv]) -> None:
    for pv in pvs.values():
        with open(pv.image, "rb") as fh:
            data = fh.read(64 * 1024)
        assert check_contract(Head(data, set()))
        assert not check_contract(Head(data, {1}))  # the label sector unreadable
        assert not check_contract(Head(bytes(512) + bytes(len(data) - 512), set()))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mangled_metadata_text_never_raises(pvs: dict[str, Pv], data: st.DataObject) -> None:
    """A text damaged in any way, with a valid CRC (so the parser sees it): notes, no error."""
    pv = pvs["one"]
    with open(pv.image, "rb") as fh:
        image = bytearray(fh.read(2 * MiB))
    pos, length = pv.text
    text = bytearray(image[pos : pos + length])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(text) - 1))
        text[at] = data.draw(st.sampled_from(b'{}[]=,"#\\0 x9-'))
    cut = data.draw(st.integers(1, len(text)))
    text = text[:cut]
    image[pos : pos + length] = bytes(text) + bytes(length - len(text))
    mda = pv.mda_starts[0]
    struct.pack_into("<QI", image, mda + 48, len(text), lvm.calc_crc(bytes(text)))
    struct.pack_into("<I", image, mda, lvm.calc_crc(bytes(image[mda + 4 : mda + 512])))
    vol = Volume(Head(bytes(image), set()), 0, PV_SIZE, Plan(PV_SIZE))
    assert lvm.probe(vol)
    lvm.plan(vol)  # must not raise
    planned = vol.plan.counts.get("lvm:logical volumes planned", 0)
    assert planned or vol.plan.notes


@pytest.mark.fuse
def test_the_live_mount_shows_each_lv_as_a_file(pvs: dict[str, Pv], tmp_path: Path) -> None:
    """``ddfs mount`` of a disk whose partition is a PV: the LV appears as ``MOUNT/VG-LV``
    beside ``p1``, holds exactly the LV's bytes, and e2fsck finds its ext4 clean."""
    pv = pvs["two"]
    disk = tmp_path / "disk.img"
    ((p_start, _),) = make_disk(
        disk, f"label: gpt\nstart=2048, size={PV_SIZE // 512}\n", PV_SIZE + 2 * MiB
    )
    place(disk, pv.image, p_start)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lv_start = p_start + pv.pe_start + LVS["data"][0][0] * EXTENT
    with live_mount(disk, tmp_path / "out", tmp_path / "map", mnt, "-q"):
        wait_for(lambda: (mnt / f"{VG}-data").exists(), 60, "the LV file did not appear")
        data = (mnt / f"{VG}-data").read_bytes()
        fsck = subprocess.run(
            ["e2fsck", "-fn", str(mnt / f"{VG}-data")], capture_output=True, text=True
        )
        names = [p["name"] for p in status(mnt)["partitions"]]
    with open(disk, "rb") as fh:
        fh.seek(lv_start)
        assert data == fh.read(pv.lv_sizes["data"])
    assert fsck.returncode == 0, fsck.stdout
    assert names == ["p1", f"{VG}-data"]  # "split" is not one range: not shown


def test_the_report_covers_the_files_of_each_lv(pvs: dict[str, Pv], tmp_path: Path) -> None:
    """``ddfs report`` of an image whose partition is a PV reports the ext4 inside LV
    ``data`` as a volume of its own, with its damaged files."""
    pv = pvs["two"]
    disk = tmp_path / "disk.img"
    ((p_start, _),) = make_disk(
        disk, f"label: gpt\nstart=2048, size={PV_SIZE // 512}\n", PV_SIZE + 2 * MiB
    )
    place(disk, pv.image, p_start)
    lv_start = p_start + pv.pe_start + LVS["data"][0][0] * EXTENT
    # the whole image rescued but for its last MiB of the LV (file data there: damaged)
    size = PV_SIZE + 2 * MiB
    cut = lv_start + pv.lv_sizes["data"] - MiB
    (tmp_path / "map").write_text(f"0 + 1\n0 {cut:#x} +\n{cut:#x} {size - cut:#x} -\n")
    res = run_ddfs("report", "--json", str(disk), str(tmp_path / "map"))
    assert res.returncode == 0, res.stderr
    parts = json.loads(res.stdout)["partitions"]
    lvs = [p for p in parts if p["scheme"] == "lvm"]
    assert [(p["name"], p["start"], p["filesystem"]) for p in lvs] == [
        (f"{VG}-data", lv_start, "ext")
    ]
    text = run_ddfs("report", str(disk), str(tmp_path / "map")).stdout
    assert f"== logical volume {VG}-data, bytes {lv_start}-" in text
