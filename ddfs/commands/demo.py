"""``ddfs demo`` (run by ``make demo``): use a disk's files while it is still being rescued.

The demo builds a GPT disk with an ext4 partition full of files and serves it through
``ddfs simulate`` as a slow failing disk (bad sectors in the second partition, one weak area).
It then runs ``ddfs mount`` on it (metadata first: the partition table and the ext4 metadata
are rescued before the rest) and, while the rescue is still running, does three things: an
``e2fsck -fn`` of ``p1``, a loop mount of ``p1`` with a listing of the files and a byte check
against the originals, and a look at ``status.json``. Finally it stops the mount cleanly and
shows the final status screen and the map. Everything lives in a temporary directory that is
removed at the end (unless ``--keep``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from engine.map.mapfile import parse_mapfile

MiB = 1 << 20


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _make_disk(work: Path, size: int) -> tuple[Path, Path]:
    files = work / "files"
    rng = random.Random(2026)
    for d in ("photos", "documents", "projects/ddfs"):
        (files / d).mkdir(parents=True)
        for i in range(12):
            (files / d / f"file{i:02d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 400_000)))
    (files / "README.txt").write_text("Files on a disk that is failing.\n")
    image = work / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(size)
    p1 = size * 5 // 8 // MiB * MiB
    subprocess.run(
        ["sfdisk", "-q", str(image)],
        input=f"label: gpt\n,{p1 // MiB}M,L\n,,L\n",
        text=True,
        check=True,
    )
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-d",
            str(files),
            "-E",
            f"offset={MiB}",
            str(image),
            f"{p1 // 1024}k",
        ],
        check=True,
    )
    return image, files


def _make_bad_map(work: Path, size: int) -> Path:
    """Bad areas in the second partition: the files of p1 are readable, as a good demo needs."""
    rng = random.Random(7)
    p2 = size * 5 // 8 + 2 * MiB
    bad = [(p2 + 4 * MiB, 64 * 1024), (p2 + 6 * MiB + 4608, 48 * 1024)]
    bad += [(rng.randrange(p2 // 512, size // 512 - 1) * 512, 512) for _ in range(12)]
    bad = sorted(set(bad))
    lines, pos = ["0 + 1"], 0
    for start, length in bad:
        if start < pos:
            continue
        if start > pos:
            lines.append(f"0x{pos:08X} 0x{start - pos:08X} +")
        lines.append(f"0x{start:08X} 0x{length:08X} -")
        pos = start + length
    lines.append(f"0x{pos:08X} 0x{size - pos:08X} +")
    path = work / "bad.map"
    path.write_text("\n".join(lines) + "\n")
    return path


def _stop_fuse(proc: subprocess.Popen[bytes] | None, mnt: Path) -> None:
    if _mounted(mnt) and subprocess.run(["fusermount3", "-u", str(mnt)]).returncode != 0:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)])
    if proc is not None:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _show_status(mnt: Path) -> dict[str, object]:
    st = json.loads((mnt / "status.json").read_text())
    b = st["bytes"]
    print(
        f"   status.json: phase {st['phase']}, {b['finished'] >> 10} KiB of "
        f"{st['size'] >> 10} KiB rescued, {st['ondemand']['reads']} on-demand reads, "
        f"partitions: {', '.join(p['name'] for p in st['partitions']) or 'none yet'}"
        + "".join(f"; {t['tier']} {t['pct']:.0f} %" for t in st["tiers"])
    )
    return st


def _start_simulator(image: Path, sim: Path, bad: Path, size: int) -> subprocess.Popen[bytes]:
    """``ddfs simulate``: IMAGE served as a slow failing disk ``sim/disk``."""
    return subprocess.Popen(
        [
            _bin("ddfs"),
            "simulate",
            str(image),
            str(sim),
            "--bad",
            str(bad),
            "--rate",
            "8Mi",
            "--seek-ms",
            "2",
            "--error-ms",
            "20",
            "--weak",
            f"{size - 8 * MiB}:4096:1",
        ],
        stderr=subprocess.DEVNULL,
    )


def _start_mount(work: Path, sim: Path, mnt: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``ddfs mount sim/disk rescued.img rescued.map mnt``, its screen going to ``log``."""
    return subprocess.Popen(
        [
            _bin("ddfs"),
            "mount",
            str(sim / "disk"),
            str(work / "rescued.img"),
            str(work / "rescued.map"),
            str(mnt),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _check_fsck(mnt: Path) -> bool:
    """``e2fsck -fn mnt/p1`` while the rescue runs; True if it found the filesystem clean."""
    print("== e2fsck -fn mnt/p1   (while the rescue runs)")
    fsck = subprocess.run(["e2fsck", "-fn", str(mnt / "p1")], capture_output=True, text=True)
    print("   " + fsck.stdout.strip().splitlines()[-1] + f"   (exit status {fsck.returncode})")
    return fsck.returncode == 0


def _check_files(mnt: Path, fsmnt: Path, files: Path) -> bool:
    """Loop-mount ``mnt/p1`` on ``fsmnt``, list it and compare the files with the originals."""
    print("== mount -o ro,loop mnt/p1 fs; ls -R fs")
    subprocess.run(["mount", "-o", "ro,loop", str(mnt / "p1"), str(fsmnt)], check=True)
    try:
        same = 0
        for root, _dirs, names in sorted(os.walk(fsmnt)):
            rel = Path(root).relative_to(fsmnt)
            if rel.parts[:1] == ("lost+found",):
                continue
            print(f"   {rel}/: {' '.join(sorted(names))}")
            for name in names:
                same += Path(root, name).read_bytes() == (files / rel / name).read_bytes()
        total = sum(len(n) for _, _, n in os.walk(files))
        print(f"   {same} of {total} files read back byte-exact")
        return same == total
    finally:
        subprocess.run(["umount", str(fsmnt)], check=True)


def _wait_finished(mnt: Path) -> None:
    """Show the status until the rescue has finished (at most 10 minutes)."""
    st = _show_status(mnt)
    print("== waiting for the rescue to finish (Ctrl-C or umount would stop it cleanly)")
    deadline = time.monotonic() + 600
    while st["phase"] != "finished" and time.monotonic() < deadline:
        time.sleep(3)
        st = _show_status(mnt)


def _check_result(work: Path, bad: Path, mount_proc: subprocess.Popen[bytes]) -> bool:
    """The final screen of the stopped mount, its map, and the bad areas compared with the
    simulated ones; True if the mount exited 0 and found exactly those."""
    screen = (work / "mount.log").read_text().splitlines()
    print("\n".join("   " + line for line in screen[-8:]))
    print(f"   ddfs mount exit status {mount_proc.returncode}")
    ok = mount_proc.returncode == 0
    print("== ddrescuelog -t rescued.map")
    subprocess.run(["ddrescuelog", "-t", str(work / "rescued.map")])
    got = [(p, s) for p, s, st in parse_mapfile(str(work / "rescued.map")).bmap if st != "+"]
    truth = [(p, s) for p, s, st in parse_mapfile(str(bad)).bmap if st != "+"]
    print(f"== bad areas found: {len(got)}; simulated: {len(truth)}; identical: {got == truth}")
    ok &= got == truth
    return ok


def run_demo(size: int, keep: bool = False) -> int:
    """Run the demo; return 0 when everything it shows worked."""
    size = max(size, 48 * MiB) // MiB * MiB
    work = Path(tempfile.mkdtemp(prefix="ddfs-demo-"))
    sim, mnt, fsmnt = work / "sim", work / "mnt", work / "fs"
    for d in (sim, mnt, fsmnt):
        d.mkdir()
    sim_proc = mount_proc = None
    ok = True
    try:
        print(f"== a {size // MiB} MiB GPT disk with an ext4 partition full of files ({work})")
        image, files = _make_disk(work, size)
        bad = _make_bad_map(work, size)
        print(
            "== ddfs simulate: the disk fails (bad sectors in p2, a weak area) and is slow "
            "(8 MiB/s, 2 ms seeks)"
        )
        sim_proc = _start_simulator(image, sim, bad, size)
        _wait(lambda: _mounted(sim), 30, "the simulated disk")
        print("== ddfs mount sim/disk rescued.img rescued.map mnt   (the rescue starts)")
        log = open(work / "mount.log", "wb")  # noqa: SIM115
        mount_proc = _start_mount(work, sim, mnt, log)
        _wait(lambda: _mounted(mnt), 30, "the live mount")
        _wait(lambda: (mnt / "p1").exists(), 60, "partition p1")
        print("   ls mnt: " + "  ".join(sorted(os.listdir(mnt))))
        _show_status(mnt)
        ok &= _check_fsck(mnt)
        ok &= _check_files(mnt, fsmnt, files)
        _wait_finished(mnt)
        print("== fusermount3 -u mnt   (a clean stop: the map is saved)")
        _stop_fuse(mount_proc, mnt)
        log.close()
        ok &= _check_result(work, bad, mount_proc)
        return 0 if ok else 1
    finally:
        _stop_fuse(mount_proc, mnt)
        _stop_fuse(sim_proc, sim)
        if keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
