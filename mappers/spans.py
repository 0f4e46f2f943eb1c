"""Entity offsets checked against the text, never forced into alignment.

Producers count offsets in different units: Python and spaCy in code points, JavaScript,
Java and some tokenizer bindings in UTF-16 code units (an emoji counts two), Rust servers
in UTF-8 bytes. A span taken in the wrong unit lands a few characters off, and aligning
it to tokens then stores entities like ``'isbon'``. So a record's offsets are tried in
code points first, then in the other units, and accepted only in a unit where every
entity is plausible: inside the text, equal to its surface text when the entity carries
one (``word``/``text``), and not starting or ending inside a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mappers.base import Rejected

# Scripts written without spaces between words: a boundary between two of their letters
# is a word boundary, not a cut inside a word.
_NO_SPACE_SCRIPTS = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_UNKNOWN = re.compile(r"\[UNK\]|<unk>")
_SUBWORD_MARKERS = re.compile(r"##|▁|Ġ")


def _spaceless(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _NO_SPACE_SCRIPTS)


def inside_word(text: str, offset: int) -> bool:
    """True when ``offset`` falls between two letters or digits of one word."""
    if not 0 < offset < len(text):
        return False
    before, after = text[offset - 1], text[offset]
    return before.isalnum() and after.isalnum() and not (_spaceless(before) or _spaceless(after))


def normalize_surface(surface: str) -> str:
    """A span's surface text as tokenizers may report it: no sub-word markers, no spaces,
    no accents, case-folded (uncased WordPiece models lower-case and strip accents)."""
    surface = _SUBWORD_MARKERS.sub("", surface)
    decomposed = unicodedata.normalize("NFKD", surface)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) and not c.isspace())
    return kept.casefold()


def surface_matches(span_text: str, surface: str) -> bool:
    """Whether a span's text is the entity's own ``word``/``text``, as far as it can tell.

    Unknown-token markers (``[UNK]``) stand for any characters.
    """
    expected = normalize_surface(span_text)
    parts = [normalize_surface(p) for p in _UNKNOWN.split(surface)]
    if len(parts) == 1:
        return expected == parts[0]
    return re.fullmatch(".+?".join(re.escape(p) for p in parts), expected) is not None


@dataclass(frozen=True)
class Span:
    """An entity as the response gives it; ``surface`` is its ``word``/``text`` when given."""

    start: int
    end: int
    label: str
    score: float | None = None
    surface: str | None = None


def _utf16_to_code_points(text: str) -> Callable[[int], int | None]:
    table: dict[int, int] = {}
    units = 0
    for index, char in enumerate(text):
        table[units] = index
        units += 2 if ord(char) > 0xFFFF else 1
    table[units] = len(text)
    return table.get


def _utf8_to_code_points(text: str) -> Callable[[int], int | None]:
    table: dict[int, int] = {}
    size = 0
    for index, char in enumerate(text):
        table[size] = index
        size += len(char.encode("utf-8"))
    table[size] = len(text)
    return table.get


def _problem(text: str, span: Span, start: int, end: int, subword_spans: bool) -> str | None:
    """Why (start, end) cannot be this entity's span in ``text``, or None."""
    if not 0 <= start < end <= len(text):
        return f"span ({start}, {end}) lies outside the text ({len(text)} characters)"
    piece = text[start:end]
    if not piece.strip():
        return f"span ({start}, {end}) is only whitespace"
    if span.surface is not None and not surface_matches(piece, span.surface):
        return f"span ({start}, {end}) is {piece!r} but the entity's text is {span.surface!r}"
    if not subword_spans:
        if inside_word(text, start):
            return f"span ({start}, {end}) = {piece!r} starts inside the word {_word_at(text, start)!r}"
        if inside_word(text, end):
            return f"span ({start}, {end}) = {piece!r} ends inside the word {_word_at(text, end)!r}"
    return None


def _word_at(text: str, offset: int) -> str:
    start = end = offset
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return text[start:end]


SUBWORD_HINT = "set subword_spans = true for this endpoint if the model tags parts of words"


def check_spans(text: str, spans: Sequence[Span], subword_spans: bool = False) -> list[tuple[int, int]]:
    """The spans' offsets in code points, or Rejected with the first problem found.

    Offsets are read as code points when every span is plausible that way; otherwise as
    UTF-16 code units, then as UTF-8 bytes (only texts beyond ASCII/the BMP can differ),
    taking the first unit in which every span is plausible: all spans of a response come
    from one producer, so they share a unit.
    """
    if not spans:
        return []
    for span in spans:
        if not isinstance(span.start, int) or not isinstance(span.end, int) or isinstance(span.start, bool):
            raise Rejected(
                f"entity {span.label!r} has no character offsets (start={span.start!r}, end={span.end!r})"
            )
    problems = [_problem(text, s, s.start, s.end, subword_spans) for s in spans]
    first = next((p for p in problems if p), None)
    if first is None:
        return [(s.start, s.end) for s in spans]
    units: list[tuple[str, Callable[[int], int | None]]] = []
    if any(ord(c) > 0xFFFF for c in text):
        units.append(("UTF-16 code units", _utf16_to_code_points(text)))
    if not text.isascii():
        units.append(("UTF-8 bytes", _utf8_to_code_points(text)))
    for _, convert in units:
        converted = [(convert(s.start), convert(s.end)) for s in spans]
        if all(
            a is not None and b is not None and _problem(text, s, a, b, subword_spans) is None
            for s, (a, b) in zip(spans, converted, strict=True)
        ):
            return converted  # type: ignore[return-value]
    hint = f"; {SUBWORD_HINT}" if "inside the word" in first else ""
    bad = spans[problems.index(first)]
    raise Rejected(f"entity {bad.label!r}: {first}{hint}")
