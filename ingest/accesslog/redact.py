"""Keep credentials out of everything we write: rejects, metadata and messages.

Producers sometimes log request headers. Authorization headers, cookies and API keys must
never be copied from a log line into a rejects file, a record or a message, even from a
line that is damaged. Two kinds of rules, on the reading side:

- by key: the value of a key that names a credential (``Authorization``, ``Cookie``,
  ``X-Api-Key``, ``password``, ...), the key matched with one damaged, lost or extra
  character allowed, and JSON escapes (``\\u0041``), NULs and bytes that are not UTF-8 seen
  through; the value masked to its end as far as the text can tell, or to the end of the
  line when a cut or a flipped quote leaves it open;
- by shape, wherever it is: a token after an auth scheme (``Bearer``, ``Basic``, ...),
  well-known key formats (``sk-...``, ``ghp_...``, ``AKIA...``, JWTs), credentials in URLs
  (``?api_key=``, ``user:password@``), and query parameters that are credentials by
  themselves (``?sig=``, ``?code=``, ``?key=``, ``X-Amz-Signature``, ...), names kept.

Every rule looks at the original text and their masks are joined: one rule's partial match
can never hide the evidence another rule needs (a key rule that took only a damaged value's
first word used to leave the rest for a scheme rule that no longer saw its scheme). Damage
defeats one rule at a time; a credential then still has the others against it.

The producer side (the middleware) keeps the exact, key-only ``redact_value``: its JSON is
not damaged, and its bodies are the model's data, which shape rules must not touch.
"""

from __future__ import annotations

import functools
import re
from typing import Any

SECRET_KEYS = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-[a-z]+-api-key|x-api-key|api[-_]?key)$",
    re.IGNORECASE,
)
REDACTED = "[redacted]"

# Key names, as their letters alone (``X-Api-Key`` is ``xapikey``), that hold credentials
# when they occur anywhere in a key: matched with one edit (a byte flip, loss or insertion)
# allowed, as a damaged line has them. Beside the generic ones, those platforms name so:
# Azure API Management's ``Ocp-Apim-Subscription-Key`` header and ``subscription-key``
# parameter, Azure Functions' ``x-functions-key``, DeepL's ``auth_key``, ``access_key`` (an
# API key as ipstack and its kin take it; AWS's key id).
_SECRET_WORDS = (
    "authorization",
    "cookie",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "privatekey",
    "subscriptionkey",
    "functionskey",
    "authkey",
    "accesskey",
)


def _one_edit(word: str) -> str:
    """A regex of every string within one edit (substitution, deletion, insertion) of ``word``."""
    variants = {word}
    for i in range(len(word)):
        variants.add(word[:i] + "." + word[i + 1 :])
        variants.add(word[:i] + word[i + 1 :])
    for i in range(len(word) + 1):
        variants.add(word[:i] + "." + word[i:])
    return "|".join(sorted(v.replace(".", "[a-z]") if "." in v else v for v in variants))


_FUZZY_WORDS = re.compile("|".join(_one_edit(w) for w in _SECRET_WORDS))
# Exact forms only: "token" is a credential as a key's last word (access_token, X-Auth-Token),
# not in "tokens" (a tokenizer's output) or "max_tokens".
# JSESSIONID: Java's session cookie, also a path parameter (";jsessionid=...").
# GitLab's PRIVATE-TOKEN header and ?private_token=; AWS's X-Amz-Security-Token header.
_TOKEN_KEY = re.compile(
    r"(?:^|access|refresh|auth|id|bearer|session|csrf|xsrf|api|private|security)token$|^j?sessionid$"
)


@functools.lru_cache(maxsize=4096)  # a log's keys are few and repeat on every line
def secret_key(name: str) -> bool:
    """True when a key names a credential, even with one character damaged or escaped."""
    letters = re.sub(r"[^a-z]", "", name.lower())
    if len(letters) < 5:
        return False
    return bool(_FUZZY_WORDS.search(letters) or _TOKEN_KEY.search(letters))


# Characters of a key, and what may stand between a key and its separator (a closing quote,
# or what a damaged line has there: at most three of them).
_KEY_CHARS = re.compile(r"[^\s\"'{}\[\],:=?&;]")
_GAP_CHARS = frozenset(" \t\"'")
_SEPARATORS = re.compile(r"[:=]")
# A token after an auth scheme that is also an English word ("basic training", "token
# offsets"): in the plain text only, where a header written out has its space (a decoded
# %20 in a query string is far more often words than a credential), and only a token that
# has what base64 and hex have and words lack (_TOKEN_EVIDENCE).
_WORD_SCHEMES = re.compile(
    r"(?<![a-z])(?:basic|digest|token|negotiate)\s{1,3}([a-z0-9._~+/=\-]{6,})", re.IGNORECASE
)
_TOKEN_EVIDENCE = re.compile(r"[0-9+/=]|.[A-Z]")  # a digit, "+", "/", "=", or a capital inside
_OTHER_SHAPES = "|".join(
    [
        # a token after an auth scheme; "bearer" is no English word, so no boundary and any
        # separator (a flipped space) before it
        r"bearer[^a-z0-9]{0,3}[a-z0-9._~+/=\-\ufffd]{4,}",
        # well-known key formats, however they are framed
        r"(?<![a-z])sk-[a-z0-9_\-]{3,}",
        r"(?<![a-z])(?:sk|rk|pk)_(?:live|test)_[a-z0-9]{8,}",
        r"(?<![a-z])(?:ghp|gho|ghs|ghu|ghr)_[a-z0-9]{16,}",
        r"github_pat_[a-z0-9_]{16,}",
        r"(?<![a-z])xox[abprs]-[a-z0-9\-]{8,}",
        r"(?<![a-z0-9])(?:akia|asia)[a-z0-9]{16}",
        r"(?<![a-z0-9])aiza[a-z0-9_\-]{20,}",
        r"(?<![a-z])(?:hf|glpat)[_-][a-z0-9_\-]{16,}",
        r"eyj[a-z0-9_\-]{8,}\.[a-z0-9_\-]{8,}\.[a-z0-9_\-]*",
        # the password of user:password@host in a URL
        r"(?<=://)[^/\s:@\"]{1,64}:[^/\s@\"]{1,256}(?=@)",
    ]
)
_SHAPES = re.compile(_OTHER_SHAPES, re.IGNORECASE)
# Every shape above starts with, or holds, one of these (lower case).
_SHAPE_WORDS = ("bearer", "basic", "digest", "token", "negotiate", "k-", "k_", "gh", "github_pat_", "xox",
                "akia", "asia", "aiza", "hf", "glpat", "eyj", "://")  # fmt: skip
_QUERY_END = re.compile(r"[&;\s\"',}\]]")
# Query parameters that are credentials by themselves, named too shortly or too commonly for
# the key rule ("key", "code"): only as a query parameter (after "?", "&" or ";"), value to
# its delimiter. Azure Storage SAS "sig" (learn.microsoft.com, "Create a service SAS"), Azure
# Functions "code" (function access keys), "key" (Google APIs), S3 presigned URLs
# "X-Amz-Signature"/"X-Amz-Credential"/"X-Amz-Security-Token" (AWS SigV4 query
# authentication), GCS "X-Goog-Signature"/"X-Goog-Credential" (V4 signed URLs), CloudFront
# "Signature", OAuth 2.0 "access_token" (RFC 6750, section 2.3), "token", and Zoom's
# meeting passcode "pwd".
_QUERY_SECRETS = re.compile(
    r"[?&;](?:sig|key|code|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|access_token|token|pwd)=([^&;#\s\"',}\]]+)",
    re.IGNORECASE,
)
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\/")
# ... and URL percent-encoding (RFC 3986, section 2.1), in the second view: a parameter name
# spelled ``%73ig`` or ``api%5Fkey``, or a query string nested in a parameter's value
# (``?next=%2Fcb%3Fapi_key%3D...``), is still a credential's name. ``%25`` ("%") before an
# escape is seen through too: a query string nested twice (a redirect URL in a redirect
# URL) has ``%253D`` for "=".
_ESCAPE_OR_PERCENT = re.compile(r"\\u([0-9a-fA-F]{4})|\\/|%(?:25)*([0-9a-fA-F]{2})")


def _view(text: str, percent: bool = False) -> tuple[str, list[int], list[int]]:
    """The text with JSON escapes (and, with ``percent``, URL %-escapes of ASCII) decoded, and
    where each of its characters came from.

    ``\\u0041``, ``\\/`` and ``%41`` become the characters they stand for, except a quote, a
    backslash or a control character (those would change where strings end). Returns the
    view and, per view character, its start and end in ``text`` (both lists empty when the
    view is the text).
    """
    if "\\" not in text and not (percent and "%" in text):
        return text, [], []
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in (_ESCAPE_OR_PERCENT if percent else _ESCAPE).finditer(text):
        for i in range(pos, m.start()):
            out.append(text[i])
            starts.append(i)
            ends.append(i + 1)
        escape = m.group(0)
        # the digits of \uXXXX or %XX (%25XX ...); None for \/, which matches no group (and
        # _ESCAPE has no second group to ask for)
        digits = m.group(m.lastindex) if m.lastindex else None
        char = chr(int(digits, 16)) if digits else "/"
        if (
            char in '"\\'
            or char < " "
            or "\ud800" <= char <= "\udfff"
            or (escape[0] == "%" and char >= "\x7f")  # a byte of a UTF-8 sequence: in no credential's name
        ):
            for i in range(m.start(), m.end()):
                out.append(text[i])
                starts.append(i)
                ends.append(i + 1)
        else:
            out.append(char)
            starts.append(m.start())
            ends.append(m.end())
        pos = m.end()
    for i in range(pos, len(text)):
        out.append(text[i])
        starts.append(i)
        ends.append(i + 1)
    return "".join(out), starts, ends


def _string_end(view: str, i: int) -> int:
    """Past the closing quote of the string opening at ``i``, or -1 when it does not close."""
    j = i + 1
    while j < len(view):
        c = view[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    return -1


def _value_end(view: str, i: int) -> int:
    """Where the value starting at ``i`` ends, as far as damaged text can tell.

    A string that closes and is followed by what follows a value (``,`` ``}`` ``]`` or the
    end), an array or object to its matching bracket; anything else (a quote lost or flipped,
    a bare word, a cut) runs to the next member (``, "``), a closing bracket or the end.
    """
    n = len(view)
    while i < n and view[i] in " \t\r":
        i += 1
    if i < n and view[i] == '"':
        end = _string_end(view, i)
        if end > 0:
            rest = view[end:].lstrip(" \t\r")
            if not rest or rest[0] in ",}]\n":
                return end
    elif i < n and view[i] in "[{":
        depth, j = 0, i
        while j < n:
            c = view[j]
            if c == '"':
                end = _string_end(view, j)
                if end < 0:
                    return n
                j = end
                continue
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return n
    j = i
    while j < n:
        c = view[j]
        if c in "}]\n":
            return j
        if c == ",":
            k = j + 1
            while k < n and view[k] in " \t\r":
                k += 1
            if k >= n or view[k] == '"':
                return j
        j += 1
    return n


def _spans(view: str, decoded: bool = False) -> list[tuple[int, int, bool]]:
    """(start, end, whole value?) of every credential in the view, from every rule
    (``decoded``: the percent-decoded view, where words after an encoded space are words)."""
    found: list[tuple[int, int, bool]] = []
    for m in _SEPARATORS.finditer(view):
        key_end = m.start()
        for _ in range(3):  # the gap between a key and its separator
            if key_end > 0 and (view[key_end - 1] in _GAP_CHARS or not _KEY_CHARS.match(view, key_end - 1)):
                key_end -= 1
        key_start = key_end
        while key_start > 0 and key_end - key_start < 64 and _KEY_CHARS.match(view, key_start - 1):
            key_start -= 1
        if key_end - key_start >= 3 and secret_key(view[key_start:key_end]):
            start = m.end()
            while start < len(view) and view[start] in " \t\r":
                start += 1
            if m.group(0) == "=":  # key=value in a query string or a cookie: to its delimiter
                stop = _QUERY_END.search(view, start)
                end, whole = (stop.start() if stop else len(view)), False
            else:
                end, whole = _value_end(view, start), True
            if end > start:
                found.append((start, end, whole))
    if "=" in view:
        found.extend((m.start(1), m.end(1), False) for m in _QUERY_SECRETS.finditer(view))
    lowered = view.lower()
    if any(word in lowered for word in _SHAPE_WORDS):  # most text has none: skip the costly regex
        found.extend((m.start(), m.end(), False) for m in _SHAPES.finditer(view))
        if not decoded:
            found.extend(
                (m.start(), m.end(), False)
                for m in _WORD_SCHEMES.finditer(view)
                if _TOKEN_EVIDENCE.search(m.group(1))
            )
    return found


def redact_text(text: str) -> str:
    """The text with every credential the rules find replaced by ``[redacted]``.

    Used for raw lines (which may be damaged anywhere), reasons and values copied from a
    line. Text with no credential comes back unchanged.
    """
    spans: list[tuple[int, int, bool]] = []
    # Two views, their masks joined: decoding %26 ("&") in the second would end a value early,
    # so values are measured in the first too; the second finds the names only it can read.
    for percent in (False, True) if "%" in text else (False,):
        view, starts, ends = _view(text, percent)
        found = _spans(view, percent)
        if starts:  # back from the view to the text
            found = [(starts[a], ends[b - 1], whole) for a, b, whole in found if b > a]
        if percent:  # a value after a decoded ":" is a JSON value only if it is a string there
            found = [(a, b, whole and text[a] == '"') for a, b, whole in found]
        spans.extend(found)
    if not spans:
        return text
    spans.sort()
    merged: list[list[Any]] = []
    for start, end, whole in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = merged[-1][2] or whole
        else:
            merged.append([start, end, whole])
    out: list[str] = []
    pos = 0
    for start, end, whole in merged:
        # a whole value stays a JSON string, so that the line still reads as JSON around it
        out.append(text[pos:start] + (f'"{REDACTED}"' if whole else REDACTED))
        pos = end
    out.append(text[pos:])
    return "".join(out)


# Longer paths and URLs are masked each time: one unique per line (data in a query string)
# would keep the cache's 4096 entries at that size each.
_CACHED_LENGTH = 1024


def redact_endpoint(path: str) -> str:
    """An endpoint path or URL as read from a log line, with credentials masked (see
    ``redact_text``).

    Producers that log the raw request target put its query string or path parameters in the
    path (``/predict?api_key=...``, ``;jsessionid=...``), and the endpoint is copied to the
    summary, ``--json``, dataset and directory names, metadata, rejects and the run log: it
    is masked once, where it is read, so that every copy is masked.
    """
    return _redact_cached(path) if len(path) <= _CACHED_LENGTH else redact_text(path)


@functools.lru_cache(maxsize=4096)  # a log's endpoints are few and repeat on every line
def _redact_cached(path: str) -> str:
    return redact_text(path)


# Hex digits and dashes (a UUID, a trace id): no rule can match such text.
_PLAIN_ID = re.compile(r"[0-9a-fA-F-]*")


def redact_id(value: str) -> str:
    """A request id as copied to every record and a column: masked as ``redact_text`` masks
    (a client sets ``X-Request-Id``; a token has been seen there), cheaply for the usual
    UUIDs and hex trace ids, which hold no credential."""
    return value if _PLAIN_ID.fullmatch(value) else redact_text(value)


# How far past the cap a raw line is read for redaction: a credential that starts before the
# cut is seen whole (or open to the window's end, which the key rule masks to the end).
_RAW_WINDOW = 64 << 10  # bytes


def redact_raw(raw: bytes, cap: int | None = None) -> bytes:
    """The raw line with credentials replaced (see ``redact_text``), cut to ``cap`` bytes.

    Redacted first, cut after: a cut through a credential would leave its first characters,
    which no shape recognizes once cut (``eyJhb``, ``AKIAZQ``). Only the first ``cap`` + 64 KB
    are redacted, so that a long line costs no more than that; the cut is at a character
    boundary. Bytes that are not UTF-8 come back as U+FFFD.
    """
    if cap is None:
        return redact_text(raw.decode("utf-8", "replace")).encode("utf-8")
    text = redact_text(raw[: cap + _RAW_WINDOW].decode("utf-8", "replace"))
    return text.encode("utf-8")[:cap].decode("utf-8", "ignore").encode("utf-8")


def redact_copied(value: Any) -> Any:
    """A copy of a JSON value read from a log line, for a record's metadata: the values of
    credential keys (matched as ``secret_key`` does) replaced at any depth, and credentials
    in strings (by shape, or as ``key=value``) masked as in ``redact_text``."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and secret_key(k) else redact_copied(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_copied(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_keys(value: Any) -> Any:
    """A JSON value with the values of credential keys (matched as ``secret_key`` does)
    replaced at any depth, and nothing else touched: for the model's own data (a record's
    inputs), which shape rules must not rewrite. The value itself when it has no such key."""
    if isinstance(value, dict):
        if any(isinstance(k, str) and secret_key(k) for k in value) or any(
            isinstance(v, dict | list) for v in value.values()
        ):
            return {
                k: REDACTED if isinstance(k, str) and secret_key(k) else redact_keys(v)
                for k, v in value.items()
            }
        return value
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [redact_keys(v) for v in value]
    return value


def redact_value(value: Any, also: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON value with secret keys' values replaced, at any depth.

    The producer's rule (exact key names, see the module's docstring). ``also``: more key
    names (lower case) to treat as secret, such as configured body fields.
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
