"""The floor of any ingester built on per-pair Python mappers, on one core.

    python benchmarks/floor.py access.jsonl

Per line: ``orjson.loads``; per request/response pair: our built-in mapper (the fastest
we have, picked once per endpoint from the response shape) and ``orjson.dumps`` of what it
returns. Nothing else: no ids, timestamps, metadata, validation, columns, files or
processes. Whatever ``ingest`` adds on top of this is what it can still win; twice this
rate is the most two cores could ever give. Prints a JSON line with lines and records.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mappers


def main() -> None:
    chosen: dict[str, Any] = {}
    lines = records = 0
    with open(sys.argv[1], "rb") as fh:
        for raw in fh:
            entry = orjson.loads(raw)
            lines += 1
            if entry["status"] >= 400:
                continue
            inputs, outputs = entry["request"], entry["response"]
            pairs = zip(inputs, outputs, strict=True) if isinstance(inputs, list) else [(inputs, outputs)]
            for item_in, item_out in pairs:
                mapper = chosen.get(entry["path"])
                if mapper is None:
                    mapper = chosen[entry["path"]] = mappers.BUILTIN[mappers.detect(item_out)][0]
                orjson.dumps(mapper(item_in, item_out))
                records += 1
    print(orjson.dumps({"lines": lines, "records": records}).decode())


if __name__ == "__main__":
    main()
