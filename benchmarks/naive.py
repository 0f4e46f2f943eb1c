"""The path a user would write by hand: ``json.loads``, the Argilla client's monitoring
mappers, and the bulk request body serialized as the client serializes it.

    python benchmarks/naive.py access.jsonl [--limit N]

Prints a JSON line with the lines and records it handled. Nothing is sent anywhere: the
bodies are built and dropped, so this is the client-side cost only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from itertools import islice

from argilla.client.client import (
    CreationText2TextRecord,
    CreationTextClassificationRecord,
    CreationTokenClassificationRecord,
    Text2TextBulkData,
    TextClassificationBulkData,
    TokenClassificationBulkData,
)
from argilla.client.models import Text2TextRecord
from argilla.monitoring.asgi import text_classification_mapper, token_classification_mapper

BATCH = 500  # the client's default batch size


def text2text_mapper(inputs: str, outputs: dict) -> Text2TextRecord:
    return Text2TextRecord(text=inputs, prediction=[outputs["translation_text"]])


MAPPERS = {
    "/transformers/": (
        text_classification_mapper,
        CreationTextClassificationRecord,
        TextClassificationBulkData,
    ),
    "/spacy/": (token_classification_mapper, CreationTokenClassificationRecord, TokenClassificationBulkData),
    "/translate/": (text2text_mapper, CreationText2TextRecord, Text2TextBulkData),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    pending: dict[str, list] = defaultdict(list)
    lines = records = failed = body_bytes = 0

    def flush(endpoint: str) -> None:
        nonlocal body_bytes
        _, creation, bulk = MAPPERS[endpoint]
        batch = pending.pop(endpoint)
        body = bulk(records=[creation.from_client(r) for r in batch]).json(by_alias=True)
        body_bytes += len(body)

    with open(args.path, encoding="utf-8") as log:
        for line in islice(log, args.limit):
            lines += 1
            entry = json.loads(line)
            if entry["status"] >= 400 or entry["path"] not in MAPPERS:
                continue
            mapper = MAPPERS[entry["path"]][0]
            for inputs, outputs in zip(entry["request"], entry["response"], strict=False):
                try:
                    record = mapper(inputs, outputs)
                except Exception:
                    failed += 1
                    continue
                pending[entry["path"]].append(record)
                records += 1
                if len(pending[entry["path"]]) >= BATCH:
                    flush(entry["path"])
    for endpoint in list(pending):
        flush(endpoint)
    json.dump(
        {"lines": lines, "records": records, "mapper_failures": failed, "body_bytes": body_bytes}, sys.stdout
    )


if __name__ == "__main__":
    main()
