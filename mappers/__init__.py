"""Task mappers: pure functions from one (inputs, outputs) pair to the task part of a record.

A mapper returns a dict with the task's fields in the wire format (``inputs`` or
``text``/``tokens``, ``prediction``, ...); the pipeline adds id, timestamp, agent and
metadata. Custom mappers (``package.module:function``) may instead return an Argilla/Rubrix
client record or ``None`` to skip the pair.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mappers import text2text as _t2t
from mappers import text_classification as _tc
from mappers import token_classification as _tok

Mapper = Callable[[Any, Any], Any]

BUILTIN: dict[str, tuple[Mapper, str]] = {
    "text_classification": (_tc.text_classification, _tc.TASK),
    "token_classification": (_tok.token_classification, _tok.TASK),
    "text2text": (_t2t.text2text, _t2t.TASK),
}

# Order matters: a dict with "entities" is NER even if it also has a "text" key.
_DETECTORS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("token_classification", _tok.looks_like),
    ("text_classification", _tc.looks_like),
    ("text2text", _t2t.looks_like),
)


def detect(outputs: Any) -> str | None:
    """The built-in mapper whose output shape this response item has, if any."""
    for name, looks_like in _DETECTORS:
        if looks_like(outputs):
            return name
    return None


class UnknownMapper(ValueError):
    pass


def resolve(name: str) -> tuple[Mapper, str | None]:
    """The mapper named in config or on the command line, and its task when it is known.

    Raises UnknownMapper with a one-line reason, so a typo stops the run before it reads.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        known = ", ".join(BUILTIN)
        raise UnknownMapper(f"unknown mapper {name!r} (built-in: {known}, or package.module:function)")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownMapper(f"mapper {name!r}: cannot import {module_name!r}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise UnknownMapper(f"mapper {name!r}: {module_name!r} has no function {attr!r}")
    return func, None
