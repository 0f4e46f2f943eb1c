"""Settings: one typed resolver, flags > environment > config file > defaults.

Every value is checked for its type (and range) when it is resolved, before any input is
read: a wrong type in the config file, like ``concurrency = "4"``, is a ``ConfigError``
(exit 2) naming the key, never a traceback later. ``--help`` takes its defaults from
``DEFAULTS`` here. The config file (see README): ::

    store = "rubrix-store"

    [rubrix]
    url = "http://localhost:6900"
    workspace = "monitoring"

    [endpoints."/spacy/"]
    dataset = "monitoring_spacy"
    mapper = "token_classification"
    tags = { model = "en_core_web_sm" }
    metadata = ["method", "client"]
    labels = ["GPE", "ORG", "PERSON"]  # Argilla 2.x: the span question's options

Unknown keys are errors: a typo in a cron job's config should stop it, not be ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.accesslog.redact import redact_endpoint
from ingest.errors import ConfigError, UsageError
from ingest.transform.routing import Route, check_dataset_name, dataset_for_endpoint

if TYPE_CHECKING:
    from ingest.sources.formats import Profile

DEFAULT_STORE = "rubrix-store"

# The defaults of every setting that has one; --help shows these.
DEFAULTS: dict[str, Any] = {
    "store": DEFAULT_STORE,
    "batch_size": 500,
    "concurrency": 4,
    "retry_for": 120.0,
    "timeout": 60.0,
    "api": "auto",
}

# Environment variables, in the order they are looked at (the first one set wins).
# The Argilla names are those of Argilla's own client (argilla.init), so a machine set up
# for it works as is.
ENV: dict[str, tuple[str, ...]] = {
    "rubrix_url": ("RUBRIX_API_URL", "ARGILLA_API_URL"),
    "api_key": ("RUBRIX_API_KEY", "ARGILLA_API_KEY"),
    "workspace": ("RUBRIX_WORKSPACE", "ARGILLA_WORKSPACE"),
    "store": ("RUBRIX_INGEST_STORE",),
    "config": ("RUBRIX_INGEST_CONFIG",),
}


@dataclass(frozen=True)
class _Type:
    """A config value's type: ``kind`` is str, int or float (an int is a float too),
    ``low``/``high`` the range, both inclusive; the same ranges as the flags'."""

    kind: type
    low: float | None = None
    high: float | None = None
    secret: bool = False  # a credential: an error names its type, never its value

    def check(self, value: Any, where: str) -> Any:
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or isinstance(value, bool):
            names = {str: "a string", int: "an integer", float: "a number"}
            shown = _shown(value, secret=self.secret)
            raise ConfigError(f"{where} must be {names[self.kind]}, not {shown}")
        if self.low is not None and value < self.low:
            raise ConfigError(f"{where} must be at least {self.low:g}, not {value!r}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{where} must be at most {self.high:g}, not {value!r}")
        return value


def _shown(value: Any, secret: bool = False) -> str:
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
             dict: "a table"}  # fmt: skip
    kind = kinds.get(type(value), type(value).__name__)
    return kind if secret else f"{kind} ({value!r})"


_TOP: dict[str, _Type] = {
    "store": _Type(str),
    "state": _Type(str),
    "rejects": _Type(str),
    "format": _Type(str),  # the log format of every input (ingest.sources.formats)
}
_RUBRIX: dict[str, _Type] = {
    "url": _Type(str),
    "api_key": _Type(str, secret=True),
    "workspace": _Type(str),
    "batch_size": _Type(int, 1, 5000),
    "concurrency": _Type(int, 1, 64),
    "retry_for": _Type(float, 0),
    "timeout": _Type(float, 0.1),
    "api": _Type(str),
}
SERVER_APIS = ("auto", "v0", "v2")
_TOP_KEYS = {*_TOP, "rubrix", "endpoints", "formats", "inputs"}
_ENDPOINT_KEYS = {
    "dataset", "mapper", "workspace", "tags", "metadata", "format", "labels", "task", "multi_label",
    "subword_spans",
}  # fmt: skip
_TASKS = ("TextClassification", "TokenClassification", "Text2Text")


@dataclass
class Config:
    """A config file, parsed and type-checked: nothing in it is a wrong type."""

    routes: dict[str, Route] = field(default_factory=dict)
    store: str | None = None
    state: str | None = None
    rejects: str | None = None
    rubrix: dict[str, Any] = field(default_factory=dict)  # keys of _RUBRIX, values checked
    path: Path | None = None
    format: str | None = None  # the log format of every input (default: detected per input)
    formats: dict[str, Any] = field(default_factory=dict)  # user-defined profiles, [formats.NAME]
    inputs: dict[str, str] = field(default_factory=dict)  # input prefix or glob -> format


@dataclass(frozen=True)
class ServerSettings:
    """Where and how to send records to a Rubrix/Argilla server (the ``rubrix`` sink)."""

    url: str
    api_key: str | None = None
    workspace: str | None = None
    batch_size: int = DEFAULTS["batch_size"]
    concurrency: int = DEFAULTS["concurrency"]
    retry_for: float = DEFAULTS["retry_for"]  # seconds a batch may keep retrying transient failures
    timeout: float = DEFAULTS["timeout"]  # seconds per request
    # Which API the server speaks: "v0" (Rubrix 0.x, Argilla 1.x), "v2" (Argilla 2.x) or
    # "auto": asked from the server before anything else (ingest.sinks.detect).
    api: str = DEFAULTS["api"]


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _mapper_in(config_dir: Path, mapper: str | None) -> str | None:
    """A ``file.py:function`` mapper of a config file, relative to the file (as mappers
    tells a file from a module); built-ins, modules and absolute paths are left as they are."""
    if mapper is None or ":" not in mapper:
        return mapper
    module, _, function = mapper.rpartition(":")
    if not (module.endswith(".py") or "/" in module or os.sep in module):
        return mapper
    path = Path(module).expanduser()
    return mapper if path.is_absolute() else f"{config_dir / path}:{function}"


def _route(endpoint: str, table: Any, config_dir: Path) -> Route:
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
    for key in ("mapper", "workspace", "format"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    labels = table.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
        raise ConfigError(
            f"{where}: labels must be a list of label names (the Argilla 2.x question's options)"
        )
    task = table.get("task")
    if task is not None and task not in _TASKS:
        raise ConfigError(f"{where}: task must be one of {', '.join(_TASKS)}")
    mapper = table.get("mapper")
    if task is not None and isinstance(mapper, str):
        from mappers import TASKS

        if mapper in TASKS and TASKS[mapper] != task:
            raise ConfigError(f"{where}: mapper {mapper!r} gives {TASKS[mapper]} records, not task {task}")
    for key in ("multi_label", "subword_spans"):
        if key in table and not isinstance(table[key], bool):
            raise ConfigError(f"{where}: {key} must be true or false")

    return Route(
        endpoint=endpoint,
        dataset=dataset or dataset_for_endpoint(endpoint),
        mapper=_mapper_in(config_dir, table.get("mapper")),
        workspace=table.get("workspace"),
        tags=dict(tags),
        metadata_fields=tuple(metadata),
        format=table.get("format"),
        labels=tuple(labels),
        task=task,
        multi_label=table.get("multi_label"),
        subword_spans=table.get("subword_spans", False),
        dataset_named=dataset is not None,
    )


def _inputs_relative_to(path: Path, inputs: dict[str, str]) -> dict[str, str]:
    """``[inputs]`` with each relative local prefix or glob also resolved against the config
    file's folder (an absolute path), as the file's other paths are; the key as written is
    kept first, so what matched the names given on the command line still does."""
    out = dict(inputs)
    for key, fmt in inputs.items():
        if "://" not in key and not os.path.isabs(key):
            absolute = os.path.normpath(os.path.join(os.path.abspath(path.parent), key))
            out.setdefault(absolute + ("/" if key.endswith(("/", os.sep)) else ""), fmt)
    return out


def load(path: Path) -> Config:
    """Parse and type-check a TOML config file. Raises ConfigError naming the key."""
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
    _unknown(set(rubrix), set(_RUBRIX), "[rubrix]")
    rubrix = {key: _RUBRIX[key].check(value, f"[rubrix] {key}") for key, value in rubrix.items()}
    if rubrix.get("api", "auto") not in SERVER_APIS:
        raise ConfigError(
            f'[rubrix] api must be "auto", "v0" (Rubrix 0.x, Argilla 1.x) or "v2" (Argilla 2.x), '
            f"not {rubrix['api']!r}"
        )
    top = {key: _TOP[key].check(data[key], f"{path}: {key}") for key in _TOP if key in data}
    formats, inputs = data.get("formats", {}), data.get("inputs", {})
    if not isinstance(formats, dict) or not all(isinstance(t, dict) for t in formats.values()):
        raise ConfigError(f"{path}: [formats.NAME] must be tables")
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise ConfigError(
            f'{path}: [inputs] maps inputs to format names: "s3://bucket/capture/" = "sagemaker"'
        )
    # Paths in a config file (and mapper files, in _route) are relative to the file, not to
    # wherever cron starts the run.
    for key in ("store", "state", "rejects"):
        if key in top:
            top[key] = str(path.parent / top[key])
    return Config(
        format=top.get("format"),
        formats=formats,
        inputs=_inputs_relative_to(path, inputs),
        # keyed as the reader has endpoints, a credential in a query string masked (see --endpoint)
        routes={
            redact_endpoint(ep): _route(redact_endpoint(ep), table, path.parent)
            for ep, table in endpoints.items()
        },
        store=top.get("store"),
        state=top.get("state"),
        rejects=top.get("rejects"),
        rubrix=rubrix,
        path=path,
    )


def from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The first of the setting's environment variables that is set and not empty."""
    environ = os.environ if environ is None else environ
    for var in ENV[name]:
        value = environ.get(var)
        if value:
            return value
    return None


def pick(name: str, flag: Any, environ: Mapping[str, str] | None = None, config: Any = None) -> Any:
    """flags > environment > config file > defaults, for one setting."""
    if flag is not None:
        return flag
    if name in ENV:
        value = from_env(name, environ)
        if value is not None:
            return value
    if config is not None:
        return config
    return DEFAULTS.get(name)


def load_config(flag: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """The config file named by --config or RUBRIX_INGEST_CONFIG, parsed; none: empty."""
    path = pick("config", flag, environ)
    return load(Path(path)) if path else Config()


def store_dir(flag: Path | None, config: Config, environ: Mapping[str, str] | None = None) -> Path:
    """The local store: --store > RUBRIX_INGEST_STORE > config ``store`` > ./rubrix-store."""
    return Path(pick("store", flag, environ, config.store))


def server(
    flags: Mapping[str, Any], config: Config, environ: Mapping[str, str] | None = None
) -> ServerSettings | None:
    """The server settings when a URL is set (flag, environment or config), else None.

    ``flags`` holds the command line's values (None where not given) under the option
    names: rubrix_url, api_key, workspace, batch_size, concurrency, retry_for, timeout.
    """
    url = pick("rubrix_url", flags.get("rubrix_url"), environ, config.rubrix.get("url"))
    if not url:
        return None
    check_url(url, flags.get("rubrix_url"), environ)
    values = {
        key: pick(key, flags.get(key), environ, config.rubrix.get(key))
        for key in ("api_key", "workspace", "batch_size", "concurrency", "retry_for", "timeout", "api")
    }
    return ServerSettings(url=url, **values)


def check_url(url: str, flag: Any, environ: Mapping[str, str] | None = None) -> None:
    """A server URL must say its scheme: ``localhost:6900`` would be read as the scheme
    ``localhost`` and fail only after the retries. Raises UsageError (exit 2) saying where it came from."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    environ = os.environ if environ is None else environ
    if flag is not None:
        where = "--rubrix-url"
    else:
        where = next((var for var in ENV["rubrix_url"] if environ.get(var)), "the config's [rubrix] url")
    shown = _url_shown(url)
    hint = shown.split("://", 1)[-1]
    raise UsageError(
        f"server URL {shown!r} ({where}) has no scheme http:// or https://: did you mean http://{hint}?"
    )


def _url_shown(url: str) -> str:
    """A server URL for a message: a password (``user:password@``) and the query string or
    fragment (``?api_key=``) can be credentials, and an error goes to a shared cron log."""
    shown = re.sub(r"([?#]).*", r"\1[redacted]", url, flags=re.DOTALL)
    return re.sub(r"^((?:[^:/?#]*:)?//)?[^/?#@]*@", lambda m: (m.group(1) or "") + "[redacted]@", shown)


def routes(
    config: Config, endpoints: tuple[str, ...], dataset: str | None, mapper: str | None
) -> dict[str, Route]:
    """The config's routes, with --dataset/--mapper applied to the single --endpoint given."""
    found = dict(config.routes)
    if dataset or mapper:
        if len(endpoints) != 1:
            raise UsageError("--dataset and --mapper apply to a single endpoint: give exactly one --endpoint")
        endpoint = endpoints[0]
        base = found.get(endpoint) or Route(endpoint=endpoint, dataset=dataset_for_endpoint(endpoint))
        if dataset:
            try:
                check_dataset_name(dataset)
            except ValueError as exc:
                raise UsageError(f"Invalid value for '--dataset': {exc}") from None
        found[endpoint] = dataclasses.replace(
            base,
            dataset=dataset or base.dataset,
            mapper=mapper or base.mapper,
            dataset_named=bool(dataset) or base.dataset_named,
        )
    return found


def profiles(config: Config, forced: str | None = None) -> dict[str, Profile]:
    """The log formats: built-in profiles and the config's ``[formats]``. Raises ConfigError
    (exit 2) for a bad profile, or a format named by --format, ``format``, ``[inputs]`` or an
    endpoint that does not exist."""
    from ingest.sources import formats

    try:
        found = formats.registry(config.formats)
    except formats.FormatError as exc:
        raise ConfigError(str(exc)) from None
    named = [
        ("--format", forced),
        ("format", config.format),
        *(("[inputs]", v) for v in config.inputs.values()),
    ]
    named += [(f"[endpoints.{r.endpoint!r}] format", r.format) for r in config.routes.values()]
    for where, name in named:
        if name is not None and name not in found:
            raise ConfigError(f"{where}: unknown format {name!r} (known: {', '.join(found)})")
    return found


def check_routes(found: dict[str, Route], local_store: bool = False, workspace: str | None = None) -> None:
    """Check routes before anything is read. Raises ConfigError (exit 2) naming the endpoints.

    Every mapper must resolve (a typo stops the run before it reads). Routes to one
    dataset must agree on what a dataset has once: its tags, and its task where the
    mappers tell it (a dataset holds one task, Rubrix refuses records of another). A
    dataset is a name in a workspace (``workspace`` is the run's default one): the same
    name in two workspaces is two datasets, except in the local store, which keeps one
    dataset per name (``local_store``).
    """
    import mappers

    tasks: dict[str, str | None] = {}
    for route in found.values():
        if route.mapper:
            try:
                tasks[route.endpoint] = mappers.resolve(route.mapper)[1]
            except mappers.UnknownMapper as exc:
                raise ConfigError(f"endpoint {route.endpoint}: {exc}") from None
        if route.task:
            tasks[route.endpoint] = route.task
    first: dict[tuple[str | None, str], Route] = {}
    for route in found.values():
        space = route.workspace or workspace
        key = (None if local_store else space, route.dataset)
        other = first.setdefault(key, route)
        if other is route:
            continue
        both = f"endpoints {other.endpoint} and {route.endpoint} go to dataset {route.dataset!r}"
        where = f" in workspace {space!r}" if space and not local_store else ""
        other_space = other.workspace or workspace
        if local_store and other_space != space:
            raise ConfigError(
                f"{both} in workspaces {other_space or '(default)'} and {space or '(default)'}: the local "
                "store keeps one dataset per name; give them different dataset names"
            )
        if other.tags != route.tags:
            raise ConfigError(
                f"{both}{where} with different tags ({other.tags} and {route.tags}): a dataset has one "
                "set of tags; give them the same tags or different datasets"
            )
        if None not in (route.multi_label, other.multi_label) and route.multi_label != other.multi_label:
            raise ConfigError(
                f"{both}{where} with different multi_label: a dataset is single- or multi-label; "
                "give them the same multi_label or different datasets"
            )
        task, other_task = tasks.get(route.endpoint), tasks.get(other.endpoint)
        if task and other_task and task != other_task:
            raise ConfigError(
                f"{both}{where} with different tasks ({other_task} from mapper {other.mapper}, {task} "
                f"from mapper {route.mapper}): a dataset holds one task; give them different datasets"
            )
