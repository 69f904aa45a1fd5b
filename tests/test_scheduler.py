"""The scheduler: urgent reads slip in between background reads, one source read at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engine.map.mapfile import parse_mapfile
from engine.ondemand.thread import Scheduler
from engine.options import RescueOptions
from engine.rescue.builder import prepare


def slow_rescuer(tmp_path: Path, random_file, testmap: str, delay: float = 0.01):
    infile = random_file(8 << 20)
    (tmp_path / "tm").write_text(testmap)
    opts = RescueOptions(test_map=str(tmp_path / "tm"))
    r, _ = prepare(str(infile), str(tmp_path / "out"), str(tmp_path / "map"), opts)
    log: list[tuple[float, int, int, str]] = []
    active = threading.Semaphore(1)
    real = r.source.read_into

    def read_into(pos: int, size: int, buf: memoryview) -> tuple[int, int]:
        assert active.acquire(blocking=False), "two reads reached the source at once"
        try:
            time.sleep(delay)
            log.append((time.monotonic(), pos, size, threading.current_thread().name))
            return real(pos, size, buf)
        finally:
            active.release()

    r.source.read_into = read_into  # type: ignore[method-assign]
    return r, log, infile


def test_urgent_read_waits_for_one_background_read(tmp_path: Path, random_file) -> None:
    r, log, infile = slow_rescuer(tmp_path, random_file, "0 + 1\n0 0x800000 +\n")
    sched = Scheduler(r)
    thread = threading.Thread(target=sched.run, name="engine")
    thread.start()
    try:
        while len(log) < 5:
            time.sleep(0.005)
        target = 7 << 20
        submitted = time.monotonic()
        req = sched.submit(target, 4096)
        assert req.done.wait(5)
        after = [entry for entry in log if entry[0] >= submitted]
        urgent_index = next(i for i, e in enumerate(after) if e[1] <= target < e[1] + e[2])
        assert urgent_index <= 1, after[:3]
        assert r.map.is_finished(target, 4096)
        data = (tmp_path / "out").read_bytes()[target : target + 4096]
        assert data == infile.read_bytes()[target : target + 4096]
    finally:
        sched.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert sched.finished.is_set()
    saved = parse_mapfile(str(tmp_path / "map"))
    assert saved.bmap.size_of("+") >= 64 * 1024 * 5


def test_urgent_read_of_bad_data_records_it_once(tmp_path: Path, random_file) -> None:
    testmap = "0 + 1\n0 0x400000 +\n0x400000 0x10000 -\n0x410000 0x3F0000 +\n"
    r, log, _ = slow_rescuer(tmp_path, random_file, testmap, delay=0.001)
    sched = Scheduler(r)
    thread = threading.Thread(target=sched.run, name="engine")
    thread.start()
    try:
        req = sched.submit(0x408000, 1024)
        assert req.done.wait(5)
        assert not r.map.is_finished(0x408000, 1024)
        with r.map.lock:
            assert r.map.bmap.status_at(0x408000) == "-"
            assert r.map.bmap.status_at(0x408200) == "-"
        reads_before = len(log)
        req = sched.submit(0x408000, 1024)  # known bad: not read again
        assert req.done.wait(5)
        assert len([e for e in log[reads_before:] if e[1] == 0x408000]) == 0
        while not sched.background_done:
            time.sleep(0.01)
    finally:
        sched.stop()
        thread.join(10)
    bm = parse_mapfile(str(tmp_path / "map")).bmap
    assert [(p, s) for p, s, st in bm if st != "+"] == [(0x400000, 0x10000)]
