"""The TOML configuration: per-endpoint routes and target settings.

Example (see README): ::

    store = "rubrix-store"

    [rubrix]
    url = "http://localhost:6900"
    workspace = "monitoring"

    [endpoints."/spacy/"]
    dataset = "monitoring_spacy"
    mapper = "token_classification"
    tags = { model = "en_core_web_sm" }
    metadata = ["method", "client"]

Unknown keys are errors: a typo in a cron job's config should stop it, not be ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import ConfigError
from ingest.transform.routing import Route, check_dataset_name

_TOP_KEYS = {"store", "state", "rejects", "rubrix", "endpoints"}
_RUBRIX_KEYS = {"url", "api_key", "workspace", "batch_size", "concurrency", "retry_for", "timeout"}
_ENDPOINT_KEYS = {"dataset", "mapper", "workspace", "tags", "metadata"}


@dataclass
class Config:
    routes: dict[str, Route] = field(default_factory=dict)
    store: str | None = None
    state: str | None = None
    rejects: str | None = None
    rubrix: dict[str, Any] = field(default_factory=dict)


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _route(endpoint: str, table: Any) -> Route:
    where = f"[endpoints.{endpoint!r}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    _unknown(set(table), _ENDPOINT_KEYS, where)
    dataset = table.get("dataset")
    if dataset is not None:
        if not isinstance(dataset, str):
            raise ConfigError(f"{where}: dataset must be a string")
        try:
            check_dataset_name(dataset)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    tags = table.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ConfigError(f"{where}: tags must be a table of strings")
    metadata = table.get("metadata", [])
    if not isinstance(metadata, list) or not all(isinstance(m, str) for m in metadata):
        raise ConfigError(f"{where}: metadata must be a list of field names")
    for key in ("mapper", "workspace"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    from ingest.transform.routing import dataset_for_endpoint

    return Route(
        endpoint=endpoint,
        dataset=dataset or dataset_for_endpoint(endpoint),
        mapper=table.get("mapper"),
        workspace=table.get("workspace"),
        tags=dict(tags),
        metadata_fields=tuple(metadata),
    )


def load(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    _unknown(set(data), _TOP_KEYS, str(path))
    endpoints = data.get("endpoints", {})
    if not isinstance(endpoints, dict):
        raise ConfigError(f"{path}: endpoints must be a table of endpoint paths")
    rubrix = data.get("rubrix", {})
    if not isinstance(rubrix, dict):
        raise ConfigError(f"{path}: [rubrix] must be a table")
    _unknown(set(rubrix), _RUBRIX_KEYS, "[rubrix]")
    for key in ("store", "state", "rejects"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string")
    return Config(
        routes={ep: _route(ep, table) for ep, table in endpoints.items()},
        store=data.get("store"),
        state=data.get("state"),
        rejects=data.get("rejects"),
        rubrix=rubrix,
    )
