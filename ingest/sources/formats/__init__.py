"""The registry of log formats: built-in profiles, user-defined ones, and detection.

A format is chosen per input: ``--format NAME``, else the config's ``[inputs]`` table
(input prefix -> format), else the config's top-level ``format``, else detected from the
input's first lines when exactly one profile recognises them all, else ``access-log``.

User-defined profiles live in the config, without code::

    [formats.my-app]
    base = "structlog"                 # optional: start from a built-in profile
    time_zone = "Europe/Paris"         # for times written without an offset
    endpoint = "/predict/"             # when lines do not say
    labels = ["NEGATIVE", "POSITIVE"]  # class index -> name
    decoders = ["json", "base64", "csv", "jsonl"]
    [formats.my-app.fields]
    time = "ts"
    endpoint = "http.path"
    request = ["req.body", "payload"]
    response = "resp.body"
    status = "http.status"
    request_id = "ctx.request_id"
    [formats.my-app.join]              # start and finish logged as two lines
    field = "event"
    request = "started"
    response = "finished"
    window = "5m"
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson

from ingest.sources.formats.builtin import BUILTIN, is_bentoml_schema
from ingest.sources.formats.decode import check_decoders
from ingest.sources.formats.fieldmap import FieldMap, PathError, compile_path
from ingest.sources.formats.profile import Profile
from ingest.sources.formats.times import TimeError, zone

DEFAULT = "access-log"
DETECT_LINES = 5
SCHEMA = "bentoml-schema"  # not a format: a BentoML schema file, read for its columns only

_PROFILE_KEYS = {
    "base",
    "description",
    "fields",
    "decoders",
    "time_zone",
    "time_unit",
    "endpoint",
    "endpoint_from_path",
    "labels",
    "join",
    "join_window",
    "row_key",
    "input_column",
    "prediction_columns",
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")


class FormatError(ValueError):
    """An unknown format or a bad profile in config; the message says which and why."""


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        raise FormatError(f"{where}: {value!r} is not a duration like 300, 90s, 5m or 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]


def profile_from_config(name: str, table: Any, known: dict[str, Profile]) -> Profile:
    """A profile from its ``[formats.NAME]`` table; raises FormatError naming the problem."""
    where = f"[formats.{name}]"
    if not isinstance(table, dict):
        raise FormatError(f"{where} must be a table")
    extra = sorted(set(table) - _PROFILE_KEYS)
    if extra:
        raise FormatError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(_PROFILE_KEYS))})")
    base_name = table.get("base", name if name in BUILTIN else None)
    if base_name is not None:
        if base_name not in known:
            raise FormatError(f"{where}: unknown base {base_name!r} (known: {', '.join(known)})")
        base = known[base_name]
    else:
        base = Profile(name=name)
    changes: dict[str, Any] = {"name": name, "native": False if name != DEFAULT else base.native}
    valid = {f.name for f in dataclasses.fields(base)}
    try:
        if "fields" in table:
            if not isinstance(table["fields"], dict):
                raise FormatError(f"{where}: fields must be a table of field paths")
            changes["fields"] = base.fields.merged(FieldMap.from_config(table["fields"], f"{where}.fields"))
            changes["native"] = False
        if "decoders" in table:
            changes["decoders"] = check_decoders(table["decoders"], where)
        if "time_zone" in table:
            changes["time_zone"] = zone(str(table["time_zone"]))
        if "time_unit" in table:
            if table["time_unit"] not in ("s", "ms", "us", "ns"):
                raise FormatError(f"{where}: time_unit must be s, ms, us or ns")
            changes["time_unit"] = table["time_unit"]
        for key in ("endpoint", "description", "row_key", "input_column"):
            if key in table:
                if key not in valid:
                    raise FormatError(f"{where}: {key} does not apply to a {base_name or 'new'} profile")
                changes[key] = str(table[key])
        if "prediction_columns" in table:
            if "prediction_columns" not in valid:
                raise FormatError(f"{where}: prediction_columns applies to bentoml profiles only")
            changes["prediction_columns"] = tuple(str(c) for c in table["prediction_columns"])
        if "endpoint_from_path" in table:
            pattern = re.compile(str(table["endpoint_from_path"]))
            if "endpoint" not in pattern.groupindex:
                raise FormatError(
                    f"{where}: endpoint_from_path needs a group named endpoint: (?P<endpoint>...)"
                )
            changes["endpoint_from_path"] = pattern
        if "labels" in table:
            labels = table["labels"]
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise FormatError(f"{where}: labels must be a list of names, index 0 first")
            changes["labels"] = tuple(labels)
        if "join_window" in table:
            changes["join_window"] = _seconds(table["join_window"], where)
        if "join" in table:
            join = table["join"]
            if not isinstance(join, dict) or not {"field", "request", "response"} <= set(join):
                raise FormatError(f"{where}.join needs field, request and response (and optionally window)")
            changes["event_field"] = compile_path(str(join["field"]))
            changes["request_event"] = join["request"]
            changes["response_event"] = join["response"]
            if "window" in join:
                changes["join_window"] = _seconds(join["window"], f"{where}.join")
    except (ValueError, PathError, TimeError, re.error) as exc:
        raise FormatError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    if not changes["native"] and not changes.get("fields", base.fields).paths and base_name is None:
        raise FormatError(f"{where}: a profile without a base needs a fields table")
    profile = dataclasses.replace(base, **changes)
    profile._path_info = {}  # replace() shares the base's cache
    if not profile.native and not profile.fields.paths.get("time") and base_name is None:
        raise FormatError(f"{where}.fields: time is required")
    return profile


def registry(formats: dict[str, Any] | None = None) -> dict[str, Profile]:
    """Built-in profiles plus the config's ``[formats]``; raises FormatError."""
    profiles = {name: make() for name, make in BUILTIN.items()}
    for name, table in (formats or {}).items():
        profiles[name] = profile_from_config(name, table, profiles)
    return profiles


def detect(lines: list[bytes], profiles: dict[str, Profile]) -> tuple[str | None, list[str]]:
    """(format, candidates) from a file's first lines.

    The format is the one profile that recognises every readable line among the first
    ``DETECT_LINES``; None when none or several do (``candidates`` says which did).
    ``SCHEMA`` marks a BentoML schema file.
    """
    candidates: set[str] | None = None
    for raw in lines[:DETECT_LINES]:
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if is_bentoml_schema(obj):
            return SCHEMA, [SCHEMA]
        matching = {name for name, p in profiles.items() if name in BUILTIN and p.sniff(obj)}
        candidates = matching if candidates is None else candidates & matching
    found = sorted(candidates or ())
    return (found[0] if len(found) == 1 else None), found


__all__ = ["DEFAULT", "FormatError", "Profile", "detect", "profile_from_config", "registry"]
