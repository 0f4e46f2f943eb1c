"""Tokenizer helpers: Rubrix's whitespace split, cut further at entity boundaries, and the
server's trimming of spans. Shared by the token classification mapper and by validation
(ingest/transform/validate.py), which so imports no mapper.
"""

from __future__ import annotations


def whitespace_split(text: str) -> list[str]:
    r"""``re.split(r"\s+", text)``, Rubrix's split, at twice its speed.

    ``str.split()`` cuts at the same characters (both use Python's Unicode whitespace) but
    drops the empty strings that the regex gives for whitespace at either end.
    """
    tokens = text.split()
    if not tokens:
        return ["", ""] if text else [""]
    if text[0].isspace():
        tokens.insert(0, "")
    if text[-1].isspace():
        tokens.append("")
    return tokens


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop whitespace at the edges of a span, as the server does before checking alignment."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def tokenize(text: str, boundaries: set[int]) -> list[str]:
    r"""Rubrix's ``\s+`` split, with tokens cut further at the given character offsets.

    Only boundaries that fall strictly inside a whitespace-free run need a cut; when there
    are none (most texts) this is exactly Rubrix's split, done by the regex engine.
    """
    inside = [
        b for b in boundaries if 0 < b < len(text) and not text[b - 1].isspace() and not text[b].isspace()
    ]
    if not inside:
        return whitespace_split(text)
    # Each cut lies inside a word, so the pieces between cuts split on whitespace exactly as
    # the whole text would, except that the word is cut in two at the piece boundary.
    tokens: list[str] = []
    start = 0
    for cut in sorted(inside):
        tokens += whitespace_split(text[start:cut])
        start = cut
    tokens += whitespace_split(text[start:])
    return tokens
