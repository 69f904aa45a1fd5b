"""ddrescue's argument syntax (numbers with multipliers, time intervals) and number formatting."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from engine.errors import DdfsError

if TYPE_CHECKING:
    from fractions import Fraction

_INT_RE = re.compile(r"^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(.*)$")
#: ``_INT_RE`` with ddrescue 1.30's ``_`` separators between groups of digits (3 or more
#: digits per group after a separator, 2 or more in hex): ``1_234_567``, ``0x1234_5678``
_ARG_RE = re.compile(
    r"^([+-]?)(0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]{2,})*|0[0-7]*(?:_[0-7]{3,})*"
    r"|[1-9][0-9]*(?:_[0-9]{3,})*)(.*)$"
)
_PREFIXES = "kMGTPEZYRQ"
#: a time interval: ``1``, ``1.5``, ``.5``, ``1/2``, digits maybe parted by single ``_`` (1.30),
#: then a unit
_DIGITS = r"[0-9](?:_?[0-9])*"
_TIME_RE = re.compile(rf"\s*((?:{_DIGITS})(?:\.{_DIGITS}|/{_DIGITS})?|\.{_DIGITS})([smhd]?)\s*")


def parse_c_int(text: str) -> int:
    """Parse an integer like C ``strtoll`` with base 0 (decimal, 0x hex, leading-0 octal)."""
    m = _INT_RE.match(text.strip())
    if not m or m.group(3):
        raise ValueError(f"invalid integer {text!r}")
    sign = -1 if m.group(1) == "-" else 1
    digits = m.group(2)
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits[0] == "0":
        return sign * int(digits[1:], 8)
    return sign * int(digits)


def parse_number(
    text: str,
    option: str,
    sector_size: int = 512,
    minimum: int = -(2**63),
    maximum: int = 2**63 - 1,
) -> int:
    """Parse a ddrescue number: ``1k``=1000, ``1Ki``=1024, ``2s``= 2 sectors, ``0x10``, ``010``,
    ``1_234_567`` (1.30's separators).

    Raises:
        DdfsError: with ddrescue's message for a bad value or one out of limits.
    """
    m = _ARG_RE.match(text.strip())
    if not m or m.group(3).startswith("_"):
        raise DdfsError(f"Bad or missing numerical argument in option '{option}'.")
    value = parse_c_int(m.group(1) + m.group(2).replace("_", ""))
    tail = m.group(3)
    if tail:
        factor = 1
        rest = tail
        if rest[0] in _PREFIXES:
            exponent = _PREFIXES.index(rest[0]) + 1
            if len(rest) > 1 and rest[1] == "i":
                if rest[0] == "k":
                    raise DdfsError(f"Bad multiplier in numerical argument of option '{option}'.")
                factor = 1024**exponent
                rest = rest[2:]
            else:
                factor = 1000**exponent
                rest = rest[1:]
        elif rest.startswith("Ki"):
            factor = 1024
            rest = rest[2:]
        if rest.startswith("s"):  # sectors, or bytes ('B'): one unit at most
            factor *= sector_size
            rest = rest[1:]
        elif rest == "B":
            rest = ""
        if rest:
            raise DdfsError(f"Bad multiplier in numerical argument of option '{option}'.")
        value *= factor
    if not minimum <= value <= maximum:
        raise DdfsError(f"Value out of limits [{minimum},{maximum}] in option '{option}'.")
    return value


def parse_time(text: str, option: str) -> int:
    """Parse a ddrescue time interval (``10``, ``1.5m``, ``1/2h``) into whole seconds."""
    value = parse_rational_time(text, option)
    if value.denominator != 1:
        raise DdfsError(f"Time interval must be a whole number of seconds in option '{option}'.")
    return int(value)


def parse_rational_time(text: str, option: str) -> Fraction:
    """Parse a time interval that may be a fraction of a second (``0.5``, ``1/4``)."""
    from fractions import Fraction  # exact, and only paid for by a time option (3 ms to import)

    m = _TIME_RE.fullmatch(text)
    if not m:
        raise DdfsError(f"Bad or missing time interval in option '{option}'.")
    num = m.group(1).replace("_", "")
    try:
        if "/" in num:
            a, b = num.split("/")
            value = Fraction(Fraction(a), Fraction(b))
        else:
            value = Fraction(num)
    except (ValueError, ZeroDivisionError):
        raise DdfsError(f"Bad or missing time interval in option '{option}'.") from None
    return value * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def format_size(num: float, binary: bool = False, limit: int = 999_999) -> str:
    """Format like ddrescue's status screen: divide while above ``limit`` (``67108 kB``)."""
    factor = 1024 if binary else 1000
    prefixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] if binary else ["k", "M", "G", "T", "P", "E"]
    p = ""
    n = int(num)
    for prefix in prefixes:
        if abs(n) <= limit:
            break
        n //= factor
        p = prefix
    return f"{n} {p}"


def format_num3(num: int) -> str:
    """An exact size as ddrescue's ``--ask`` shows it: ``2Mi``, ``1k``, ``1_048_577``."""
    prefix = ""
    if num % 1024 == 0:
        for p in "KMGTPEZYRQ":
            if num == 0 or num % 1024:
                break
            num //= 1024
            prefix = p + "i"
    if not prefix:
        for p in "kMGTPEZYRQ":
            if num == 0 or num % 1000:
                break
            num //= 1000
            prefix = p
    digits = str(abs(num))
    if abs(num) >= 10000:
        groups: list[str] = []
        while digits:
            groups.insert(0, digits[-3:])
            digits = digits[:-3]
        digits = "_".join(groups)
    return ("-" if num < 0 else "") + digits + prefix


def format_time(seconds: float, low_precision: bool = False) -> str:
    """Format a time interval as ddrescue does: ``35s``, ``1m  5s``, ``2h 10m``, ``n/a``."""
    if seconds < 0:
        return "n/a"
    s = int(seconds)
    parts: list[tuple[int, str]] = []
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        parts.append((d, "d"))
    if h:
        parts.append((h, "h"))
    if m:
        parts.append((m, "m"))
    if s and not (low_precision and parts):
        parts.append((s, "s"))
    if not parts:
        return "0s"
    out = f"{parts[0][0]}{parts[0][1]}"
    for value, unit in parts[1:3]:
        out += ("  " if value < 10 else " ") + f"{value}{unit}"
    return out


def pct(part: int, whole: int) -> str:
    """Percentage with two decimals, truncated as ddrescue does."""
    if whole <= 0:
        return "0.00%"
    hundredths = part * 10000 // whole
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


LLONG_MAX = (1 << 63) - 1  # ddrescue's positions and sizes are C ``long long``


def _cdiv(a: int, b: int) -> int:
    """C's integer division (towards zero)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def format_percentage(
    num: int, den: int, iwidth: int = 3, prec: int = -2, rounding: bool = True
) -> str:
    """ddrescue's ``format_percentage`` (main_common.cc), its 64-bit range steps included: a
    negative ``prec`` gives only the decimals needed; ``rounding`` rounds the last one."""
    if den < 0:
        num, den = -num, -den
    if abs(num) <= LLONG_MAX // 100 and den <= LLONG_MAX // 10:
        num *= 100
    elif abs(num) <= LLONG_MAX // 10:
        num, den = num * 10, den // 10
    else:
        den //= 100
    if den == 0:
        return "+INF" if num > 0 else "-INF" if num < 0 else "NAN"
    trunc = prec < 0
    prec = abs(prec)
    whole = _cdiv(num, den)
    buf = list(f"{'-0':>{iwidth}}" if num < 0 and whole == 0 else f"{whole:>{iwidth}}")
    rest = abs(num) % den
    if prec > 0 and (rest > 0 or not trunc):
        buf.append(".")
        while prec > 0 and (rest > 0 or not trunc):
            rest *= 10
            buf.append(str(rest // den))
            rest %= den
            prec -= 1
    if rounding and rest * 2 >= den:
        _round_up(buf)
    return "".join(buf) + "%"


def _round_up(buf: list[str]) -> None:
    """Add one to the last digit of ``buf``, carrying as ddrescue does."""
    for j in range(len(buf) - 1, -1, -1):
        if buf[j] == ".":
            continue
        if "0" <= buf[j] < "9":
            buf[j] = chr(ord(buf[j]) + 1)
            return
        if buf[j] == "9":
            buf[j] = "0"
        if j > 0 and buf[j - 1] == ".":
            continue
        if j > 0 and buf[j - 1] == " ":
            buf[j - 1] = "1"
            return
        if j > 1 and buf[j - 2] == " " and buf[j - 1] == "-":
            buf[j - 2], buf[j - 1] = "-", "1"
            return
        if j == 0 or not "0" <= buf[j - 1] <= "9":
            buf.insert(j, "1")  # ddrescue shifts the rest right in place: the last
            buf.pop()  # character falls off
            return
