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
_SECRET_KEY = (
    rb"(?:proxy-authorization|authorization|set-cookie|cookie|x-[a-z]+-api-key|x-api-key|api[-_]?key)"
)
# The key, then at most a few characters before its colon (a closing quote, or what a
# damaged line has there), then the value: a string, closed or not (a line cut short), or a
# bare word. Raw lines are the ones that did not parse, so their quoting cannot be trusted.
_SECRET_PAIR = re.compile(
    rb"(" + _SECRET_KEY + rb'[^:\n]{0,3}:\s*)(?:"(?:[^"\\]|\\.)*"?|[^\s,}\]]+)', re.IGNORECASE
)
# A credential after its scheme, wherever it is: what is left when even the key is damaged.
_SCHEME_TOKEN = re.compile(rb"\b((?:bearer|basic|digest|token)\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_raw(raw: bytes, cap: int | None = None) -> bytes:
    """The raw line with credentials replaced, then cut to ``cap`` bytes.

    Redacted before the cut, so that a value the cut would leave unterminated is caught.
    """
    raw = _SECRET_PAIR.sub(rb'\1"' + REDACTED.encode() + rb'"', raw)
    raw = _SCHEME_TOKEN.sub(rb"\1" + REDACTED.encode(), raw)
    return raw if cap is None else raw[:cap]


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
