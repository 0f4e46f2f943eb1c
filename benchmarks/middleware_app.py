"""The endpoint the middleware benchmark serves, with BENCH_MIDDLEWARE = none | ours | argilla.

A cheap rule-based NER stands in for the model so that the middleware's own cost is what
the benchmark sees: with a real model, each request is slower and any middleware's share
smaller.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request

MODE = os.environ.get("BENCH_MIDDLEWARE", "none")

app = FastAPI()


@app.post("/spacy/")
def predict_spacy(batch: list[str]) -> list[dict]:
    predictions = []
    for text in batch:
        entities, start = [], 0
        for word in text.split(" "):
            if word[:1].isupper():
                entities.append({"label": "ENT", "start": start, "end": start + len(word.rstrip(".,!?"))})
            start += len(word) + 1
        predictions.append({"text": text, "entities": entities})
    return predictions


if MODE == "ours":
    from ingest.accesslog.middleware import AccessLogMiddleware

    app.add_middleware(AccessLogMiddleware, path=os.environ["BENCH_LOG"], endpoints=["/spacy/"])
elif MODE == "argilla":
    import argilla as rg
    from argilla.monitoring.asgi import ArgillaLogHTTPMiddleware, token_classification_mapper

    rg.init(api_url=os.environ["ARGILLA_API_URL"], api_key=os.environ["ARGILLA_API_KEY"], workspace="argilla")

    def batch_mapper(inputs: list[str], outputs: list[dict]) -> list:
        """Argilla 1.x hands the mapper the whole batch; its mapper takes one pair."""
        return [token_classification_mapper(i, o) for i, o in zip(inputs, outputs, strict=True)]

    import argilla.monitoring.asgi
    from starlette.middleware.base import _StreamingResponse
    from starlette.responses import StreamingResponse

    class _EitherStreamingResponse(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, StreamingResponse | _StreamingResponse)

    class _StreamingResponseShim(StreamingResponse, metaclass=_EitherStreamingResponse):
        pass

    # Three shims so that Argilla 1.29's middleware runs and logs on Starlette 1.x; none
    # changes the work it does per request. (1) Its CachedJsonRequest reads the body through
    # a second Request object, which leaves Starlette's own request unread and the call
    # hanging; Starlette now caches the body itself (the TODO in Argilla's source), so the
    # shim hands back Starlette's request. (2) Its __init__ takes the endpoint first and the
    # app as a keyword, which add_middleware(cls, ...) cannot call. (3) It logs only
    # responses that are a StreamingResponse, and call_next now returns Starlette's private
    # _StreamingResponse (not a subclass), so without the shim it silently logs nothing.
    argilla.monitoring.asgi.CachedJsonRequest = lambda scope, receive, send: scope["bench.request"]
    argilla.monitoring.asgi.StreamingResponse = _StreamingResponseShim

    class ArgillaMiddleware(ArgillaLogHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Any:
            request.scope["bench.request"] = request
            return await super().dispatch(request, call_next)

    def argilla_middleware(inner: object) -> ArgillaLogHTTPMiddleware:
        return ArgillaMiddleware(
            api_endpoint="/spacy/", dataset="monitoring_spacy", records_mapper=batch_mapper, app=inner
        )

    app.add_middleware(argilla_middleware)
