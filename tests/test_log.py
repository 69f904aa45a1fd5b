"""``ddfs log`` against GNU ddrescuelog 1.27, side by side on the same maps."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd, run_ddfs

EXE = shutil.which("ddrescuelog")
assert EXE is not None, "ddrescuelog (package gddrescue) must be installed: run `make test`"

MAPS = {
    "all": "0x3000 - 2\n0 0x1000 +\n0x1000 0x800 ?\n0x1800 0x800 *\n0x2000 0x400 /\n"
    "0x2400 0x200 -\n0x2600 0x1A00 +\n0x4000 0x1001 ?\n",
    "late": "0 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "done": "0 + 1\n0 0x100000000 +\n",
    "other": "0 ?\n0 0x80 +\n0x80 0x100 +\n0x180 0x100 /\n0x280 0x3000 +\n",
}


def _random_map(seed: int, n: int = 3000) -> str:
    rng = random.Random(seed)
    pos = 0
    lines = ["0x5000 * 1"]
    prev = ""
    for _ in range(n):
        st = rng.choice([c for c in "?*/-+" if c != prev])
        size = rng.choice([rng.randint(1, 5000), 512 * rng.randint(1, 64)])
        lines.append(f"0x{pos:X} 0x{size:X} {st}")
        pos += size
        prev = st
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("maps")
    out = {}
    for name, text in {**MAPS, "rand": _random_map(7)}.items():
        out[name] = d / f"{name}.map"
        out[name].write_text(text)
    out["dom"] = d / "dom.map"
    out["dom"].write_text("0 ?\n0x800 0x1000 +\n0x1800 0x1000 -\n0x2800 0x20000 +\n")
    return out


def _noncomment(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]


def _both(*args: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess[str], ...]:
    assert EXE
    gnu = subprocess.run([EXE, *args], capture_output=True, text=True, input=stdin)
    ours = run_ddfs("log", *args, input=stdin)
    return gnu, ours


def _check(*args: str, stdin: str | None = None) -> None:
    gnu, ours = _both(*args, stdin=stdin)
    assert ours.returncode == gnu.returncode, (args, ours.stderr, gnu.stderr)
    assert _noncomment(ours.stdout) == _noncomment(gnu.stdout), args


DOMAINS = [[], ["-i", "0x1800", "-s", "0x2000"], ["-m", "DOM"], ["-i", "0x100", "-m", "DOM"]]


OPS = [
    ["-t"], ["-t", "-B"], ["-D"], ["-a", "?*-,+/+"], ["-n"], ["-l", "?-"],
    ["-l", "+", "-b", "4096"], ["-A"],
    ["-x", "OTHER"], ["-y", "OTHER"], ["-z", "OTHER"], ["-p", "OTHER"], ["-P", "ALL"],
]  # fmt: skip
CASES = [
    (name, dom, op)
    for name in ("all", "late", "done", "rand")
    for dom in range(len(DOMAINS))
    for op in OPS
]


@pytest.mark.parametrize(("name", "dom", "op"), CASES)
def test_same_output(maps: dict[str, Path], name: str, dom: int, op: list[str]) -> None:
    subst = {"DOM": str(maps["dom"]), "OTHER": str(maps["other"]), "ALL": str(maps["all"])}
    args = [subst.get(a, a) for a in [*op, *DOMAINS[dom]]]
    _check(*args, str(maps[name]))


def test_status_several_files(maps: dict[str, Path]) -> None:
    _check("-t", str(maps["all"]), str(maps["late"]), str(maps["rand"]))


@pytest.mark.parametrize("t", ["", "+", "/"])
def test_complete(tmp_path: Path, t: str) -> None:
    for i, text in enumerate(["0 ?\n0x3000 0x1000 +\n0x1000 0x800 -\n0x1000 0x400 -\n",
                              "0 ?\n0x1000 0x1000 +\n0x3000 0x1000 ?\n"]):  # fmt: skip
        p = tmp_path / f"syn{i}.map"
        p.write_text(text)
        _check(f"-C{t}", str(p))


@pytest.mark.parametrize("extra", [[], ["-c?/", "-s", "0x1800"], ["-b", "4096"]])
def test_create(extra: list[str]) -> None:
    args = extra if any(a.startswith("-c") for a in extra) else ["-c", *extra]
    _check(*args, "-", stdin="1\n3\n4\n10\n")
    _check(*args, "-", stdin="1\n0x10\n\n  7 \nabc\n")


def test_create_refuses_overwrite(tmp_path: Path) -> None:
    for prog in ("gnu", "ours"):
        p = tmp_path / f"{prog}.map"
        p.write_text("0 ?\n0 0x200 +\n")
        gnu, ours = _both("-c", str(p), stdin="1\n")
        assert (gnu if prog == "gnu" else ours).returncode == 1


def test_delete_if_done(tmp_path: Path) -> None:
    for text in (MAPS["done"], MAPS["all"]):
        a, b = tmp_path / "a.map", tmp_path / "b.map"
        a.write_text(text)
        b.write_text(text)
        assert EXE
        gnu = subprocess.run([EXE, "-d", str(a)], capture_output=True, text=True)
        ours = run_ddfs("log", "-d", str(b))
        assert gnu.returncode == ours.returncode
        assert a.exists() == b.exists()


@pytest.mark.parametrize(
    "args",
    [["-a", "?"], ["-a", "?x,+-"], ["-t", "-n"], ["-C", "-c"], ["-Cx"], ["-l", "?", "-o", "1"]],
)
def test_errors(maps: dict[str, Path], args: list[str]) -> None:
    _check(*args, str(maps["all"]))


# Small maps for --shift, -p/-P, -F: starting after 0, with a leading '?', current_pos set.
SMALL = {
    "a": "0 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "b": "0 ?\n0 0x1000 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "e": "0 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n0x2010 0x1000 ?\n",
    "g": "0 ?\n0x800 0x800 -\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "i": "0 ?\n0 0x2000 +\n0x2000 0x10 -\n",
    "j": "0x1100 * 3\n0 0x1000 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "k": "0x1100 * 3\n0 0x1000 +\n0x1000 0x1000 ?\n0x2000 0x10 -\n",
    "q": "0 ?\n0x1000 0x1000 ?\n0x2000 0x1000 +\n",
    "d1": "0 ?\n0 0x4000 +\n",
    "d2": "0 ?\n0x1000 0x4000 +\n",
    "h": "0 ?\n0x100 0x100 +\n",
    "s1": "0 ?\n0x3000 0x1000 +\n0x1000 0x800 -\n",  # unordered, with gaps: for -L
    "s2": "0 ?\n0x1000 0x800 -\n0x3000 0x800 +\n0x3800 0x800 +\n",
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("small")
    out = {}
    for name, text in SMALL.items():
        (d / f"{name}.map").write_text(text)
        out[name] = str(d / f"{name}.map")
    out["rand"] = str(d / "rand.map")
    Path(out["rand"]).write_text(_random_map(11, 300))
    return out


def _subst(small: dict[str, str], args: str) -> list[str]:
    return [small.get(a, a) for a in args.split()]


@pytest.mark.parametrize(
    "args",
    [
        "a", "-o 0x800 a", "-o 0x400 j", "-o 0x800 k", "-o 0x800 q", "-i 0x800 -o 0 k",
        "-i 0x1800 -o 0 a", "-i 0x1800 -o 0 j", "-i 0x1 -o 0 k", "-i 0 -o 0 k",
        "-o 0x800 -s 0x1800 a", "-i 0x800 -o 0 -s 0x100 k", "-o 0x800 -s 0x100 a",
        "-i 0x2010 -o 0 k", "-o 0x800 -m d1 a", "-i 0x800 -o 0 -m d2 k", "-o 0x800 -m h a",
        "-o 0x7fffffffffffff00 k", "-i 0x800 a", "-i 0x800 -o 0x400 a", "-i 0x1000 nonexistent",
        "-o 0x800 nonexistent", "-o 0x800 -t a", "-o 0x800 a a", "-o 1Ki -b 4096 -L rand",
        "-i 0x3000 -o 0 rand",
    ],
)  # fmt: skip
def test_shift(small: dict[str, str], args: str) -> None:
    _check("--shift", *_subst(small, args))


@pytest.mark.parametrize(
    "args",
    [
        "-p b a", "-p a b", "-p b -i 0x1000 a", "-p e a", "-p e -s 0x2008 a", "-p g -i 0x1000 a",
        "-p g -m d1 a", "-p g -m d2 a", "-p e -i 0x2800 a", "-p a -i 0x2800 e", "-P b a",
        "-P e a", "-P a e", "-P i a", "-P a i", "-P i -s 0x1800 a", "-P i -m d1 a",
        "-P i -s 0x1000 a", "-P h -m h a", "-p b -L a", "-P b -L a", "-p a -m d1 -L b",
        "-L -P s2 s1", "-L -p s2 s1", "-L -P s1 a", "-L -P a s1", "-P s1 a", "-L -m s1 -p b a",
    ],
)  # fmt: skip
def test_compare(small: dict[str, str], args: str) -> None:
    _check(*_subst(small, args))


def _both_bytes(args: list[str], stdin: bytes = b"", is_map: bool = False) -> None:
    assert EXE
    gnu = subprocess.run([EXE, *args], capture_output=True, input=stdin)
    ours = subprocess.run(ddfs_cmd("log", *args), capture_output=True, input=stdin)
    assert ours.returncode == gnu.returncode, (args, ours.stderr, gnu.stderr)
    if is_map:
        assert _noncomment(ours.stdout.decode()) == _noncomment(gnu.stdout.decode()), args
    else:
        assert ours.stdout == gnu.stdout, args


@pytest.mark.parametrize("fmt", ["bitmap", "bitmap-le", "bitmap-be", "list"])
@pytest.mark.parametrize(
    "args",
    [
        "-l +- a", "-l ? a", "-l + -i 0x1100 a", "-l + -o 0x1000 a", "-l + -i 0x1000 -o 0 a",
        "-l + -m d1 k", "-l +- -b 3 a", "-l +- -b 1 -s 20 k", "-l +- -b 0x100 k",
        "-l ?*/- rand", "-l + -b 4096 rand", "-l - -b 1000 rand", "-l /- -i 0x1000 -o 0 rand",
        "-l + -o 0x800 -b 0x200 rand", "-l + -o 0x100 a",
    ],
)  # fmt: skip
def test_list_format(small: dict[str, str], fmt: str, args: str) -> None:
    _both_bytes(["-F", fmt, *_subst(small, args)])


@pytest.mark.parametrize("fmt", ["bitmap", "bitmap-be", "list"])
@pytest.mark.parametrize(
    "args",
    [
        "", "-c?/", "-s 0x1800", "-s 0x1900", "-b 4096", "-i 0x1000", "-i 0x1100",
        "-i 0x1000 -o 0", "-o 0x800", "-o 0x100", "-m d2", "-m h -c*-", "-i 0x1000 -s 0x800",
    ],
)  # fmt: skip
def test_create_format(small: dict[str, str], fmt: str, args: str) -> None:
    extra = _subst(small, args)
    if not any(a.startswith("-c") for a in extra):
        extra = ["-c", *extra]
    stdin = b"1\n3\n4\n10\n0x30\n" if fmt == "list" else bytes([0x5A, 0xFF, 0x03, 0, 0x80, 0xFF])
    _both_bytes(["-F", fmt, *extra, "-"], stdin, is_map=True)


def _on_tty(cmd: list[str]) -> int:
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(cmd, stdin=slave, stdout=slave, stderr=subprocess.DEVNULL)
    finally:
        os.close(slave)
        os.close(master)
    return proc.returncode


@pytest.mark.parametrize("args", ["-F bitmap -l + a", "-F bitmap-be -c -", "-F list -l + a"])
def test_bitmap_refuses_terminal(small: dict[str, str], args: str) -> None:
    assert EXE
    cmd = _subst(small, args)
    assert _on_tty(ddfs_cmd("log", *cmd)) == _on_tty([EXE, *cmd])


@pytest.mark.parametrize(
    "args", ["-F foo -l + a", "--format=bitmap-xx -t a", "--bogus a", "-l", "-t"]
)
def test_usage_errors(small: dict[str, str], args: str) -> None:
    cmd = _subst(small, args)
    gnu, ours = _both(*cmd)
    assert ours.returncode == gnu.returncode
    if "Try" in gnu.stderr:
        assert "Try 'ddfs log --help' for more information." in ours.stderr
