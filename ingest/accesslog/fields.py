"""The access-log line format's field names and values (docs/log-format.md), in one place.

The writer (``ingest.accesslog.middleware``) and the reader (``ingest.transform.logline``
and the transform stage) both spell the format through these names, so the two cannot
drift. Standard library only: the middleware imports it in serving processes.
"""

from __future__ import annotations

# Required on every line.
TS = "ts"  # ISO-8601 (naive means UTC) or epoch seconds / milliseconds
PATH = "path"  # the endpoint, matched exactly
STATUS = "status"  # the HTTP status, an integer
REQUEST = "request"  # the request body: a JSON value, or its JSON text
RESPONSE = "response"  # the response body, likewise
REQUIRED = (TS, PATH, STATUS, REQUEST, RESPONSE)

# Optional.
METHOD = "method"
URL = "url"  # becomes the record's agent when present
LATENCY_MS = "latency_ms"
REQUEST_ID = "request_id"
CONTENT_TYPE = "content_type"  # a body is read only when this is absent or names JSON
HEADERS = "headers"

# A body the writer did not capture: ``<body>_omitted`` says why, ``<body>_bytes`` its size.
REQUEST_OMITTED = "request_omitted"
RESPONSE_OMITTED = "response_omitted"
OMITTED_SUFFIX = "_omitted"
BYTES_SUFFIX = "_bytes"
TOO_LARGE = "too_large"  # over the writer's max_body_bytes
NOT_JSON = "not_json"
EMPTY = "empty"
INCOMPLETE = "incomplete"  # the response never finished
