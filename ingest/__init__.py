"""rubrix-ingest: replay JSONL prediction access logs into Rubrix datasets.

The pipeline, one module a stage: ``read`` (files to line chunks) -> ``logline`` (a line
to a log entry) -> ``routing`` (endpoint to dataset and mapper) -> ``mappers`` (pairs to
record bodies) -> ``records`` (complete wire records) -> ``validate`` (the server's
rules) -> ``sinks`` (local Parquet store or a Rubrix server). ``transform`` runs the
per-chunk stages; ``pipeline`` wires them to a sink and keeps the counts.
"""

__version__ = "0.1.0"
