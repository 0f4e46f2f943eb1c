"""Times as platforms write them, as aware UTC datetimes.

Accepted (each seen in a platform's logs, see /docs/profiles.md):

- ISO-8601 / RFC 3339 with 0 to 9 fraction digits (Go writes up to 9, trimming trailing
  zeros: KServe), ``T`` or a space between date and time, ``Z`` or an offset (``+01:00``,
  ``+0100``, ``+01``), or no offset: then the configured zone applies (BentoML writes
  naive local times), UTC by default;
- BigQuery's ``2026-11-24 12:00:16.420961 UTC`` (Vertex AI request-response logging);
- epoch numbers in seconds, milliseconds, microseconds or nanoseconds, told apart by
  magnitude unless the unit is configured; numbers written as strings are numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{0,9}))?)?)?"
    r"\s*(?:(Z|z|UTC|GMT)|([+-])(\d{2})(?::?(\d{2}))?)?$"
)
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$")

# Epoch magnitude boundaries: 1e11 s is the year 5138, so a larger value is in a finer unit.
_UNIT_DIVISORS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeError(ValueError):
    """A value that is not a time in any accepted form; the message says why."""


def zone(name: str | None) -> tzinfo:
    """The zone for naive times: an IANA name (``Europe/Paris``), ``UTC`` or ``local``.

    Raises TimeError for an unknown name, so a typo in config stops the run.
    """
    if name is None or name.upper() == "UTC":
        return UTC
    if name == "local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Paris, UTC or local)"
        ) from None


def _epoch(value: int | float, unit: str | None) -> datetime:
    if unit is None:
        magnitude = abs(value)
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    divisor = _UNIT_DIVISORS[unit]
    try:
        if isinstance(value, int):
            # integer arithmetic: a float loses the microseconds of a nanosecond epoch
            seconds, rest = divmod(value, divisor)
            return _EPOCH + timedelta(seconds=seconds, microseconds=rest * 1_000_000 // divisor)
        return _EPOCH + timedelta(seconds=value / divisor)
    except (OverflowError, ValueError):
        raise TimeError(f"epoch time is out of range: {value!r}") from None


def parse_time(value: Any, naive_zone: tzinfo = UTC, unit: str | None = None) -> datetime:
    """``value`` as an aware UTC datetime; raises TimeError with a short reason.

    ``naive_zone`` applies to times written without an offset; ``unit`` (s, ms, us, ns)
    fixes the unit of epoch numbers instead of telling it from the magnitude.
    """
    if isinstance(value, bool):
        raise TimeError("time is a boolean")
    if isinstance(value, int | float):
        return _epoch(value, unit)
    if not isinstance(value, str):
        raise TimeError(f"time has type {type(value).__name__}, expected a string or a number")
    text = value.strip()
    if len(text) >= 19 and text[4] == "-" and text[10] in "T ":
        # the common case, in C; what it refuses (BigQuery's " UTC", "+01") goes to the regex
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=naive_zone).astimezone(UTC)
            return parsed.astimezone(UTC)
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, utc, sign, off_h, off_m = match.groups()
        micro = int((fraction or "").ljust(6, "0")[:6]) if fraction else 0
        try:
            parsed = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
            )
        except ValueError as exc:
            raise TimeError(f"time is not a valid date: {text[:40]!r}, {exc}") from None
        if utc:
            return parsed.replace(tzinfo=UTC)
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
            return (parsed - offset if sign == "+" else parsed + offset).replace(tzinfo=UTC)
        return parsed.replace(tzinfo=naive_zone).astimezone(UTC)
    if _NUMBER.match(text):
        number: int | float = int(text) if text.lstrip("+-").isdigit() else float(text)
        return _epoch(number, unit)
    raise TimeError(f"time is neither ISO-8601 nor an epoch number: {text[:40]!r}")
