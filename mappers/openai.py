"""OpenAI-compatible chat and text completions (OpenAI, vLLM, TGI's Messages API).

Responses: ``{"object": "chat.completion", "choices": [{"message": {"content"}}]}`` and
``{"object": "text_completion", "choices": [{"text"}]}``; streamed ones are
``text/event-stream`` text, ``data: {...chunk...}`` lines ending with ``data: [DONE]``,
whose ``choices[].delta.content`` (chat) or ``choices[].text`` (completions) are joined
per choice ``index`` here. Prompts: the last user message of ``messages`` (its text parts
when the content is a list), or ``prompt``.
"""

from __future__ import annotations

from typing import Any

import orjson

from mappers.base import Rejected

_OBJECTS = ("chat.completion", "text_completion", "chat.completion.chunk")


def is_sse(body: Any) -> bool:
    """A streamed body logged as its text: ``data:`` lines."""
    return isinstance(body, str) and body.lstrip().startswith("data:")


def _chunks(body: Any) -> list[dict[str, Any]] | None:
    if is_sse(body):
        chunks = []
        for line in body.splitlines():
            line = line.strip()
            if not line.startswith("data:"):
                continue  # blank separators, ``event:``/``id:`` fields, comments
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise Rejected(f"streamed response has a data line that is not JSON: {data[:60]!r}") from None
            if isinstance(chunk, dict) and "error" in chunk:
                raise Rejected(f"streamed response ended with an error: {str(chunk['error'])[:200]}")
            chunks.append(chunk)
        return chunks
    if (
        isinstance(body, list)
        and body
        and all(isinstance(c, dict) and c.get("object") == "chat.completion.chunk" for c in body)
    ):
        return body
    return None


def reassemble(body: Any) -> dict[str, Any] | None:
    """A streamed answer as the one response it adds up to, or None if not streamed."""
    chunks = _chunks(body)
    if chunks is None:
        return None
    texts: dict[int, str] = {}
    chat = False
    for chunk in chunks:
        chat = chat or chunk.get("object") == "chat.completion.chunk"
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                chat = True
                piece = delta.get("content")
            else:
                piece = choice.get("text")
            texts[index] = texts.get(index, "") + (piece if isinstance(piece, str) else "")
    if not texts:
        raise Rejected("streamed response has no choices")
    if chat:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": t}} for i, t in sorted(texts.items())
        ]
        return {"object": "chat.completion", "choices": choices}
    return {
        "object": "text_completion",
        "choices": [{"index": i, "text": t} for i, t in sorted(texts.items())],
    }


def is_completion(outputs: Any) -> bool:
    if isinstance(outputs, dict):
        choices = outputs.get("choices")
        return isinstance(choices, list) and (
            outputs.get("object") in _OBJECTS
            or any(isinstance(c, dict) and ("message" in c or "text" in c) for c in choices)
        )
    return _chunks(outputs) is not None


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, {"type": "image_url", ...}]
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return None


def prompt_of(request: Any) -> str | None:
    """The prompt of an OpenAI-style request: last user message, else ``prompt``."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return None
    prompt = request.get("prompt")
    return prompt if isinstance(prompt, str) else None


def answers(outputs: Any) -> list[str]:
    """The generated texts of a (possibly streamed) completion, one per choice, in order."""
    response = reassemble(outputs) or outputs
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices:
        raise Rejected("completion response has no choices")
    texts = []
    for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        message = choice.get("message") if isinstance(choice, dict) else None
        text = _content_text(message.get("content")) if isinstance(message, dict) else choice.get("text")
        if not isinstance(text, str):
            # e.g. an assistant message with only tool calls: nothing to store as text
            raise Rejected("completion choice has no text content (tool calls only?)")
        texts.append(text)
    return texts


def split_batch(request: Any, response: Any) -> list[tuple[Any, Any]] | None:
    """Completions for a list of prompts, one pair per prompt; None for a single prompt.

    OpenAI numbers the choices prompt by prompt: ``index = prompt * n + k``.
    """
    if not isinstance(request, dict) or not isinstance(request.get("prompt"), list):
        return None
    prompts = request["prompt"]
    if not prompts or not all(isinstance(p, str) for p in prompts):
        return None
    whole = reassemble(response) or response
    choices = whole.get("choices") if isinstance(whole, dict) else None
    if not isinstance(choices, list) or len(choices) % len(prompts):
        count = len(choices) if isinstance(choices, list) else 0
        raise Rejected(f"batch size mismatch: {len(prompts)} prompts but {count} choices")
    per = len(choices) // len(prompts)
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    return [
        ({**request, "prompt": prompt}, {**whole, "choices": ordered[i * per : (i + 1) * per]})
        for i, prompt in enumerate(prompts)
    ]
