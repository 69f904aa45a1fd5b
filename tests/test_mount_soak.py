"""The mount under load: 8 readers on ``MOUNT/image`` while the engine rescues a simulated disk
with bad and weak sectors, some readers SIGKILLed mid-read and replaced.

Readers are separate processes (so they can be killed while blocked in a FUSE read), half
reading at random places and half sequentially, in 512 B to 128 KiB requests. Each checks every
read against the original image: a read must return the image's bytes, or fail with EIO where it
touches a bad or weak sector. With ``-r 2`` the weak sectors are read again in the retry passes,
so at the end the map's bad-sector areas are exactly the disk's bad sectors. Then a plain
``umount`` stops ``ddfs mount`` with exit 0: no mount and no process are left behind.

The normal suite runs ~10 s of load; ``make test-long`` runs a minute on a bigger disk.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults import check_map_claims, ddrescuelog_accepts, leftover_processes, ranges_of
from tests.fsimages import merge
from tests.mountproc import live_mount, status, wait_for
from tests.oracle import write_test_map
from tests.simdisk import is_mounted, simulated_disk

pytestmark = pytest.mark.fuse

READER = r"""
import errno, os, random, sys, time
mnt, img, mode, seed, until, bad = sys.argv[1:7]
seed, until = int(seed), float(until)
areas = [tuple(map(int, a.split(":"))) for a in bad.split(",") if a]
def hits(p, n):
    return any(p < s + m and s < p + n for s, m in areas)
rng = random.Random(seed)
fd = os.open(mnt, os.O_RDONLY)
ref = os.open(img, os.O_RDONLY)
size = os.fstat(ref).st_size
pos = rng.randrange(0, size // 4096) * 4096
while time.time() < until:
    n = rng.choice([512, 4096, 65536, 131072])
    if mode == "random":
        pos = rng.randrange(0, size // 512) * 512
    elif pos >= size:
        pos = 0
    try:
        data = os.pread(fd, n, pos)
    except OSError as e:
        ok = e.errno == errno.EIO and hits(pos, n)
        print("EIO" if ok else f"ERR{e.errno}", pos, n, flush=True)
        pos += n
        continue
    want = os.pread(ref, len(data), pos)  # (short before a bad or unrescued sector)
    print("OK" if data == want and data else "WRONG", pos, len(data), flush=True)
    pos += n
"""


def areas(size: int, count: int, seed: int, sizes: list[int]) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out: list[tuple[int, int]] = []
    while len(out) < count:
        n = rng.choice(sizes)
        p = rng.randrange(1, (size - n) // 512 - 1) * 512
        if all(p + n + 0x20000 < a or a + m + 0x20000 < p for a, m in out):
            out.append((p, n))
    return sorted(out)


def soak(tmp_path: Path, size: int, seconds: float, rate: str, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    image = tmp_path / "disk.img"
    image.write_bytes(random.Random(seed).randbytes(size))
    placed = areas(size, 10, seed, [512, 1024, 4096, 0x3000, 0x10000])
    bad, weak = placed[::2], placed[1::2]
    write_test_map(tmp_path / "bad.map", size, bad)
    weak_opts = [f"{p}:{n}:2" for p, n in weak]
    allowed = ",".join(f"{p}:{n}" for p, n in placed)
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out, mp = tmp_path / "out", tmp_path / "map"
    logs = tmp_path / "readers"
    logs.mkdir()
    readers: list[subprocess.Popen[bytes]] = []
    counts: Counter[str] = Counter()
    kills = 0
    started = 0
    with simulated_disk(
        image,
        tmp_path / "sim",
        tmp_path / "bad.map",
        rate=rate,
        seek_ms=1,
        error_ms=2,
        weak=weak_opts,
    ) as dev:
        try:
            with live_mount(dev, out, mp, mnt, "-q", "-r2", "--read-timeout=30") as m:
                until = time.time() + seconds

                def start_reader() -> subprocess.Popen[bytes]:
                    nonlocal started
                    mode = "random" if started % 2 == 0 else "seq"
                    log = open(logs / f"r{started}.log", "wb")  # noqa: SIM115
                    started += 1
                    argv = [
                        sys.executable,
                        "-c",
                        READER,
                        str(mnt / "image"),
                        str(image),
                        mode,
                        str(rng.randrange(1 << 30)),
                        str(until),
                        allowed,
                    ]
                    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
                    log.close()
                    return proc

                readers = [start_reader() for _ in range(8)]
                while time.time() < until - 1:
                    time.sleep(rng.uniform(0.5, 1.5))
                    i = rng.randrange(8)
                    if readers[i].poll() is None:
                        readers[i].kill()  # most likely blocked in a read on the mount
                        readers[i].wait(10)
                        kills += 1
                    readers[i] = start_reader()
                for proc in readers:
                    assert proc.wait(60) in (0, -9), "a reader crashed"
                wait_for(lambda: status(mnt)["phase"] == "finished", 120, "rescue unfinished")
                final = status(mnt)
                assert subprocess.run(["umount", str(mnt)]).returncode == 0
                assert m.wait(30) == 0, m.stderr()
                assert "Traceback" not in m.stderr()
        finally:
            for proc in readers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert not is_mounted(mnt)
    assert not leftover_processes(str(mnt)), leftover_processes(str(mnt))
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            tag, _, rest = line.partition(" ")
            counts[tag] += 1
            counts[f"{tag} bytes"] += int(rest.split()[1]) if tag == "OK" else 0
            assert tag in ("OK", "EIO"), f"{log.name}: {line}"
    assert ddrescuelog_accepts(mp).returncode == 0
    truth = merge([(p, p + n) for p, n in bad])
    done, badbytes = check_map_claims(mp, out, image.read_bytes(), truth)
    assert ranges_of(mp, "-") == truth, "weak sectors should be rescued by the retry passes"
    assert done + badbytes == size
    return {
        "reads_ok": counts["OK"],
        "bytes_ok": counts["OK bytes"],
        "reads_eio": counts["EIO"],
        "readers_started": started,
        "readers_killed": kills,
        "ondemand": final["ondemand"]["reads"],
    }


def test_eight_readers_10s(tmp_path: Path) -> None:
    start = time.monotonic()
    figures = soak(tmp_path, 16 << 20, 10, "6Mi", seed=3)
    print(f"\nmount soak (10 s): {figures}, {time.monotonic() - start:.1f} s in all")
    assert figures["readers_killed"] >= 4
    assert figures["reads_ok"] > 100 and figures["reads_eio"] > 0


@pytest.mark.long
def test_eight_readers_a_minute(tmp_path: Path) -> None:
    start = time.monotonic()
    figures = soak(tmp_path, 128 << 20, 60, "3Mi", seed=4)
    print(f"\nmount soak (60 s): {figures}, {time.monotonic() - start:.1f} s in all")
    assert figures["readers_killed"] >= 30
    assert figures["reads_ok"] > 1000 and figures["reads_eio"] > 0
