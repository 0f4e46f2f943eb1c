"""Keep credentials out of everything we write: rejects, metadata and messages.

Producers sometimes log request headers. Authorization headers, cookies and API keys must
never be copied from a log line into a rejects file or a record, even from a line that is
not valid JSON, so the raw text is scrubbed by pattern as well as by key.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEYS = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-[a-z]+-api-key|x-api-key|api[-_]?key)$",
    re.IGNORECASE,
)
_SECRET_PAIR = re.compile(
    rb'("(?:authorization|proxy-authorization|cookie|set-cookie|x-[a-z]+-api-key|x-api-key|api[-_]?key)"'
    rb'\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact_raw(raw: bytes) -> bytes:
    return _SECRET_PAIR.sub(rb'\1"' + REDACTED.encode() + rb'"', raw)


def redact_value(value: Any, also: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON value with secret keys' values replaced, at any depth.

    ``also``: more key names (lower case) to treat as secret, such as configured body fields.
    """
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and (SECRET_KEYS.match(k) or k.lower() in also)
            else redact_value(v, also)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_value(v, also) for v in value]
    return value
