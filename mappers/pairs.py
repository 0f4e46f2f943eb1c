"""From one logged exchange to (inputs, outputs) pairs, one per record.

Request bodies are the tutorial's (a text or a list of texts), Hugging Face Inference
API / TGI bodies ``{"inputs": ..., "parameters": ...}`` (inputs a text or a list), or
OpenAI-style bodies (``messages``, ``prompt``), which stay whole for the text2text mapper
to read the prompt from. A list of inputs is a batch: paired one to one with a list
response, never truncated.
"""

from __future__ import annotations

from typing import Any

from mappers import hf, openai
from mappers.base import Rejected

# Methods whose exchanges carry no prediction (CORS preflight, probes).
NO_PREDICTION_METHODS = frozenset({"OPTIONS", "HEAD"})


def status_skip_reason(status: int) -> str | None:
    """Why an exchange of this HTTP status holds no prediction, or None: ``error_status`` for
    an error (>= 400: the body, if any, is an error message) and ``redirect_status`` for a
    redirection (3xx, RFC 9110 section 15.4: ``/spacy`` answered with 307 to ``/spacy/``,
    304 Not Modified; no body is the model's answer)."""
    if status >= 400:
        return "error_status"
    if 300 <= status < 400:
        return "redirect_status"
    return None


def method_skip_reason(method: Any) -> str | None:
    """``options_request``/``head_request`` for exchanges that carry no prediction."""
    if isinstance(method, str) and method.upper() in NO_PREDICTION_METHODS:
        return f"{method.lower()}_request"
    return None


def body_skip_reason(request: Any) -> str | None:
    """``empty_request`` for a request body with nothing to predict on (``""``, ``{}``).

    An empty list is an empty batch, which the stage counts as ``empty_batch``."""
    if request is None or request == {}:
        return "empty_request"
    if isinstance(request, str) and not request.strip():
        return "empty_request"
    return None


def batch_mismatch(inputs: list[Any], outputs: Any) -> str | None:
    """Why a batch of ``inputs`` cannot be paired one to one with ``outputs`` (they are not
    a list, or a list of another length), as a reject reason; None when they can. A batch
    is never truncated to fit. Used for every log format (ingest/sources/formats/rules.py)."""
    if not isinstance(outputs, list):
        return f"batch size mismatch: request has {len(inputs)} inputs, response is not a list"
    if len(inputs) != len(outputs):
        return f"batch size mismatch: request has {len(inputs)} inputs, response {len(outputs)} outputs"
    return None


def pairs(request: Any, response: Any, detect: Any) -> list[tuple[Any, Any]]:
    """Pair a request's inputs with a response's outputs; Rejected on a size mismatch.

    ``detect(outputs)`` tells whether a value is one complete output (a task name), so a
    single input answered by a one-item list (list-typed endpoints, the Inference API's
    ``[[{"label", "score"}, ...]]``) is paired with the item.
    """
    batch = openai.split_batch(request, response)
    if batch is not None:
        return batch
    inputs = hf.request_inputs(request)
    if isinstance(inputs, list):
        mismatch = batch_mismatch(inputs, response)
        if mismatch:
            raise Rejected(mismatch)
        return list(zip(inputs, response, strict=True))
    if (
        isinstance(response, list)
        and len(response) == 1
        and isinstance(response[0], dict | list)
        and detect(response) is None
    ):
        return [(inputs, response[0])]
    return [(inputs, response)]
