"""Shared fixtures: paths to the tools under test and the oracle."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# The tests start ddfs (and Python helpers) hundreds of times. Where PYTHONDONTWRITEBYTECODE is
# set (this sandbox sets it), every start would compile all its modules again; let those
# processes cache their byte code, outside the checkout (never a cache in the repository).
# The caches live for one test session and are removed after it.
if "PYTHONPYCACHEPREFIX" not in os.environ:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = _PYCACHE = tempfile.mkdtemp(prefix="ddfs-pycache-")
    atexit.register(shutil.rmtree, _PYCACHE, ignore_errors=True)


def ddfs_cmd(*args: str) -> list[str]:
    """The installed ``ddfs`` script of this venv."""
    return [str(BIN / "ddfs"), *args]


def run_ddfs(*args: str, check: bool = False, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ddfs_cmd(*args), capture_output=True, text=True, check=check, **kw)  # type: ignore[call-overload]


def run_ddrescue(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ddrescue")
    assert exe, "GNU ddrescue (package gddrescue) must be installed: run `make test`"
    return subprocess.run([exe, *args], capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def map_lines(path: str | os.PathLike[str]) -> list[str]:
    """The status and block lines of a mapfile, without comments."""
    with open(path) as fh:
        return [ln.rstrip("\n") for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]


@pytest.fixture
def random_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(size: int, name: str = "in", seed: int = 1) -> Path:
        import random

        path = tmp_path / name
        path.write_bytes(random.Random(seed).randbytes(size))
        return path

    return make
