"""rubrix-ingest: replay JSONL prediction access logs into Rubrix datasets.

The pipeline, one folder a stage: ``sources`` (inputs to chunks of lines, checkpoints,
the lock) -> ``transform`` (a line to a log entry, routing, ``mappers``, complete records,
validation; the per-chunk stage and its worker pool) -> ``sinks`` (the local Parquet store,
a Rubrix server, or a dry run's preview). ``run`` orchestrates a run, ``settings`` resolves
its options, ``model`` holds the contracts the stages share, ``errors`` the exit codes,
``cli`` the command line, ``report`` the summary, run log and report, ``accesslog`` the
serving side that writes the logs.
"""

__version__ = "0.1.0"
