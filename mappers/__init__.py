"""Task mappers: pure functions from one (inputs, outputs) pair to the task part of a record.

A mapper returns a dict with the task's fields in the wire format (``inputs`` or
``text``/``tokens``, ``prediction``, ...); the pipeline adds id, timestamp, agent and
metadata. Custom mappers (``package.module:function``) may instead return an Argilla/Rubrix
client record or ``None`` to skip the pair.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mappers import text2text as _t2t
from mappers import text_classification as _tc
from mappers import token_classification as _tok
from mappers.base import Rejected

Mapper = Callable[[Any, Any], Any]

BUILTIN: dict[str, tuple[Mapper, str]] = {
    "text_classification": (_tc.text_classification, _tc.TASK),
    "token_classification": (_tok.token_classification, _tok.TASK),
    "text2text": (_t2t.text2text, _t2t.TASK),
}

# Order matters: a dict with "entities" is NER even if it also has a "text" key.
_DETECTORS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("token_classification", _tok.looks_like),
    ("text_classification", _tc.looks_like),
    ("text2text", _t2t.looks_like),
)


TASKS = {name: task for name, (_, task) in BUILTIN.items()}
MAPPER_OF_TASK = {task: name for name, task in TASKS.items()}


def detect(outputs: Any) -> str | None:
    """The built-in mapper whose output shape this response item has, if any."""
    for name, looks_like in _DETECTORS:
        if looks_like(outputs):
            return name
    return None


def is_ambiguous(outputs: Any) -> bool:
    """An output every task could have given: an empty list (no entities, no labels, no
    candidates). Its task is its dataset's, known from config, the target or other records."""
    return isinstance(outputs, list) and not outputs


__all__ = ["BUILTIN", "MAPPER_OF_TASK", "TASKS", "Mapper", "Rejected", "UnknownMapper", "detect", "resolve"]


class UnknownMapper(ValueError):
    pass


# Custom mappers already loaded, by directory and the name they were given: a worker forked
# after the check finds them here instead of loading the file again.
_LOADED: dict[str, tuple[Mapper, str | None]] = {}
# User modules are loaded under this private package, so that neither shadows the other:
# a user's mappers.py is _ingest_user_modules.mappers_<digest of its directory>, ours stays
# ``mappers``.
_PRIVATE = "_ingest_user_modules"


def resolve(name: str) -> tuple[Mapper, str | None]:
    """The mapper named in config or on the command line, and its task when it is known.

    ``name`` is a built-in (``text_classification``, ...), ``module.path:function``
    (looked for in the current directory first, then among installed packages) or
    ``path/to/file.py:function``. Raises UnknownMapper with a one-line reason, so a typo
    stops the run before it reads.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    key = f"{os.getcwd()}\0{name}"  # relative names mean another module in another directory
    if key in _LOADED:
        return _LOADED[key]
    if ":" not in name:
        known = ", ".join(BUILTIN)
        raise UnknownMapper(
            f"unknown mapper {name!r} (built-in: {known}, package.module:function or ./file.py:function)"
        )
    module_name, _, attr = name.rpartition(":")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        module = _load_file(name, Path(module_name))
    else:
        module = _load_module(name, module_name)
    func = getattr(module, attr, None)
    if not callable(func):
        raise UnknownMapper(f"mapper {name!r}: {module_name!r} has no function {attr!r}")
    _LOADED[key] = (func, None)
    return func, None


def _private_package() -> types.ModuleType:
    package = sys.modules.get(_PRIVATE)
    if package is None:
        package = types.ModuleType(_PRIVATE, "custom mappers of the user, loaded by file location")
        package.__path__ = []
        sys.modules[_PRIVATE] = package
    return package


def _exec(name: str, spec: importlib.machinery.ModuleSpec | None, where: str) -> types.ModuleType:
    if spec is None or spec.loader is None:
        raise UnknownMapper(f"mapper {name!r}: cannot import {where!r}")
    _private_package()
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise UnknownMapper(
            f"mapper {name!r}: cannot import {where!r}: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _load_file(name: str, path: Path) -> types.ModuleType:
    """A mapper module given by its file path, relative to the current directory."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UnknownMapper(f"mapper {name!r}: no such file {str(path)!r}")
    digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    private = f"{_PRIVATE}.{path.stem.replace('.', '_')}_{digest}"
    if private in sys.modules:
        return sys.modules[private]
    _also_importable(str(path.parent))
    spec = importlib.util.spec_from_file_location(private, path)
    return _exec(name, spec, str(path))


def _load_module(name: str, module_name: str) -> types.ModuleType:
    """A dotted module: the current directory's own first, then installed packages."""
    top, _, rest = module_name.partition(".")
    cwd = os.getcwd()
    spec = importlib.machinery.PathFinder.find_spec(top, [cwd])
    if spec is None:
        try:
            return importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownMapper(f"mapper {name!r}: cannot import {module_name!r}: {exc}") from None
    # The user's module, under a private name: a user's ``mappers.py`` is not our package.
    _also_importable(cwd)
    private = f"{_PRIVATE}.{top}_{hashlib.blake2b(cwd.encode(), digest_size=6).hexdigest()}"
    module = sys.modules.get(private)
    if module is None:
        where = spec.origin or top
        spec = importlib.util.spec_from_file_location(
            private, where, submodule_search_locations=spec.submodule_search_locations
        )
        module = _exec(name, spec, module_name)
    if rest:
        try:
            module = importlib.import_module(f"{private}.{rest}")
        except ImportError as exc:
            raise UnknownMapper(f"mapper {name!r}: cannot import {module_name!r}: {exc}") from None
    return module


def _also_importable(directory: str) -> None:
    """A user module's own imports of its neighbours work; appended, so that nothing in
    the user's directory can shadow a module of ours or of an installed package."""
    if directory not in sys.path:
        sys.path.append(directory)
