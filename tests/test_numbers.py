"""ddrescue's number and time syntax (behaviours 32 and 33) and status-screen formatting."""

from __future__ import annotations

import pytest

from engine.errors import DdfsError
from engine.numbers import format_size, format_time, parse_number, parse_time


@pytest.mark.parametrize(
    ("text", "sector", "value"),
    [
        ("1k", 512, 1000),
        ("1Ki", 512, 1024),
        ("2s", 512, 1024),
        ("1Kis", 512, 524288),
        ("2s", 2048, 4096),
        ("0x10s", 512, 8192),
        ("010", 512, 8),
        ("1KiB", 512, 1024),
        ("1kB", 512, 1000),
        ("3M", 512, 3_000_000),
        ("3Mi", 512, 3 << 20),
        ("1Gi", 512, 1 << 30),
        ("0X1f", 512, 31),
        ("0", 512, 0),
        # ddrescue 1.30's separators (its --help examples): 3+ digits per group, 2+ in hex
        ("123_456_789", 512, 123456789),
        ("1_234_567kB", 512, 1234567000),
        ("0x1234_5678", 512, 0x12345678),
        ("07_777", 512, 0o7777),
        ("12_3456", 512, 123456),
    ],
)
def test_numbers(text: str, sector: int, value: int) -> None:
    assert parse_number(text, "-s", sector) == value


@pytest.mark.parametrize(
    "text",
    ["1K", "1ki", "1m", "1Mib", "1.5M", "1_00", "1__000", "_1", "1_", "0x1_2", "", "x", "1e3"],
)
def test_bad_numbers(text: str) -> None:
    with pytest.raises(DdfsError):
        parse_number(text, "-s")


def test_limits_message() -> None:
    with pytest.raises(DdfsError, match=r"Value out of limits \[1,10\] in option '-c'"):
        parse_number("11", "-c", 512, 1, 10)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10), ("1.5m", 90), ("2h", 7200), ("1/2m", 30), ("1d", 86400)]
)
def test_times(text: str, seconds: int) -> None:
    assert parse_time(text, "-T") == seconds


@pytest.mark.parametrize("text", ["1.5", "0.5", "1/3", "5x", ""])
def test_bad_times(text: str) -> None:
    with pytest.raises(DdfsError):
        parse_time(text, "-T")


def test_format_size_and_time() -> None:
    assert format_size(67108864) == "67108 k"
    assert format_size(983040) == "983040 "
    assert format_size(0) == "0 "
    assert format_size(1 << 30, binary=True) == "1024 Mi"
    assert format_time(35) == "35s"
    assert format_time(65) == "1m  5s"
    assert format_time(7800) == "2h 10m"
    assert format_time(97200) == "1d  3h"
    assert format_time(-1) == "n/a"
    assert format_time(7805, low_precision=True) == "2h 10m"
