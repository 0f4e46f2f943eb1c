"""Hugging Face transformers pipeline outputs and Inference API bodies.

Token classification comes in two shapes (transformers ``TokenClassificationPipeline``):

- with ``aggregation_strategy`` (``simple``, ``first``, ``average``, ``max``):
  ``[{"entity_group", "score", "word", "start", "end"}]``, one item per entity;
- without (``none``, the default): one item per sub-word token, tagged ``B-X``/``I-X``
  (or plain ``X``), ``[{"entity", "score", "index", "word", "start", "end"}]``, with
  WordPiece continuation pieces spelled ``##...`` and ``O`` tokens left out.

The second is merged into entity spans the way the pipeline's ``first`` strategy does:
pieces of one word take the tag of the word's first piece, then consecutive words whose
tag continues the entity (``I-`` of the same type, or the same plain tag) join it
(``TokenClassificationPipeline.group_entities``). Unlike the pipeline, which groups
whatever tokens are left after dropping ``O``, two tokens only join when they are
neighbours (consecutive ``index``, or only whitespace between them): an ``O`` token
between two ``I-PER`` tokens separates two people.
"""

from __future__ import annotations

from typing import Any

from mappers.base import Rejected
from mappers.spans import Span, inside_word

# Keys of a Hugging Face Inference API / TGI request body around the inputs.
REQUEST_KEYS = frozenset({"inputs", "parameters", "options", "stream"})


def request_inputs(body: Any) -> Any:
    """The inputs of an Inference API request body ``{"inputs": ..., "parameters": ...}``;
    any other body as it is."""
    if isinstance(body, dict) and "inputs" in body and body.keys() <= REQUEST_KEYS:
        return body["inputs"]
    return body


def _tag(name: str) -> tuple[str, str]:
    """(B or I, entity type), as ``TokenClassificationPipeline.get_tag`` reads a tag."""
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name  # not in B-/I- format: a continuation, as the pipeline defaults


def is_token_level(entities: list[Any]) -> bool:
    """True for the pipeline's per-token output (no aggregation)."""
    return bool(entities) and all(
        isinstance(e, dict) and "entity" in e and "entity_group" not in e for e in entities
    )


def _continues_word(text: str | None, previous: dict[str, Any], token: dict[str, Any]) -> bool:
    word = token.get("word")
    if isinstance(word, str) and word.startswith("##"):
        return True
    start, end = token.get("start"), previous.get("end")
    # Tokenizers without a continuation marker (BPE, SentencePiece): a piece that starts
    # where the previous ended, between two letters, is inside the same word.
    return text is not None and isinstance(start, int) and start == end and inside_word(text, start)


def _neighbours(text: str | None, previous: dict[str, Any], token: dict[str, Any]) -> bool:
    index, last = token.get("index"), previous.get("index")
    if isinstance(index, int) and isinstance(last, int):
        return index == last + 1
    start, end = token.get("start"), previous.get("end")
    if text is not None and isinstance(start, int) and isinstance(end, int) and end <= start:
        return not text[end:start].strip()
    return False


def _joined_word(pieces: list[dict[str, Any]]) -> str | None:
    words = [p.get("word") for p in pieces]
    if not all(isinstance(w, str) for w in words):
        return None
    out = ""
    for word in words:
        out += word[2:] if word.startswith("##") else (" " + word if out else word)
    return out


def aggregate(tokens: list[dict[str, Any]], text: str | None) -> list[Span]:
    """Per-token tags merged into entity spans (the pipeline's ``first`` strategy)."""
    ordered = sorted(
        tokens, key=lambda t: (t.get("index") if isinstance(t.get("index"), int) else 0, t.get("start") or 0)
    )
    words: list[list[dict[str, Any]]] = []
    for token in ordered:
        if words and _continues_word(text, words[-1][-1], token) and _neighbours(text, words[-1][-1], token):
            words[-1].append(token)
        else:
            words.append([token])
    groups: list[list[list[dict[str, Any]]]] = []
    for word in words:
        name = word[0].get("entity")
        if not isinstance(name, str):
            raise Rejected(f"token {word[0].get('word')!r} has no entity tag")
        bi, kind = _tag(name)
        if groups:
            last_word = groups[-1][-1]
            _, last_kind = _tag(last_word[0]["entity"])
            if kind == last_kind and bi != "B" and _neighbours(text, last_word[-1], word[0]):
                groups[-1].append(word)
                continue
        groups.append([word])
    spans = []
    for group in groups:
        pieces = [piece for word in group for piece in word]
        scores = [w[0].get("score") for w in group]
        numbers = [s for s in scores if isinstance(s, int | float) and not isinstance(s, bool)]
        spans.append(
            Span(
                start=pieces[0].get("start"),  # type: ignore[arg-type]
                end=pieces[-1].get("end"),  # type: ignore[arg-type]
                label=_tag(group[0][0]["entity"])[1],
                score=sum(numbers) / len(numbers) if numbers else None,
                surface=_joined_word(pieces),
            )
        )
    return spans


def spans_of(entities: list[dict[str, Any]], text: str | None) -> list[Span]:
    """Entities of any supported style as spans: spaCy ``label``, transformers
    ``entity_group`` (aggregated) or ``entity`` (per token, merged here)."""
    if is_token_level(entities):
        return aggregate(entities, text)
    spans = []
    for entity in entities:
        label = entity.get("label", entity.get("entity_group", entity.get("entity")))
        surface = entity.get("word", entity.get("text"))
        spans.append(
            Span(
                start=entity.get("start"),  # type: ignore[arg-type]
                end=entity.get("end"),  # type: ignore[arg-type]
                label=label,  # type: ignore[arg-type]
                score=entity.get("score"),
                surface=surface if isinstance(surface, str) else None,
            )
        )
    return spans
