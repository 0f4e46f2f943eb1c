"""Inputs in object storage (``s3://``, ``gs://``, ``az://``, ...) through fsspec.

Needs an extra: ``pip install 'rubrix-ingest[s3]'`` (or ``[gcs]``, ``[azure]``). Credentials
come from each cloud SDK's usual places, as fsspec's filesystems find them: for S3 the
``AWS_*`` environment (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL`` for
an S3-compatible server), ``~/.aws/config`` and instance roles; for GCS
``GOOGLE_APPLICATION_CREDENTIALS`` or gcloud's default credentials; for Azure
``AZURE_STORAGE_CONNECTION_STRING`` / ``AZURE_STORAGE_ACCOUNT_NAME`` with a key or
``DefaultAzureCredential``.

A prefix (``s3://bucket/capture/``) is listed recursively and keeps the files named like
logs, as a local directory does; a glob (``s3://bucket/capture/*/2026/11/**``) is expanded
by the store. Checkpoints know an object by its first line, read with one range request
(a gzip object is inflated from its first bytes only), and its size from a metadata
request: an object read before costs two small requests per run, never a download.
"""

from __future__ import annotations

import io
import re
from hashlib import blake2b
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from ingest.errors import FileFault, InputError

if TYPE_CHECKING:
    from ingest.sources.read import Source

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAGIC = ("*", "?", "[")
READ_BLOCK = 8 << 20  # one range request per 8 MB while reading
HEAD_BYTES = 64 << 10
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}


class StorageError(InputError):
    """An object store input that cannot be listed or read; the message says why (exit 2)."""


def is_url(text: str) -> bool:
    return bool(URL.match(text)) and not text.startswith("file://")


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise StorageError(
            f"reading {url} needs fsspec: pip install 'rubrix-ingest[{_EXTRAS.get(url.split(':')[0], 's3')}]'"
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split(":")[0]
        raise StorageError(
            f"cannot read {scheme}:// URLs ({exc}); install the matching extra, e.g. "
            f"pip install 'rubrix-ingest[{_EXTRAS.get(scheme, scheme)}]'"
        ) from None
    return fs, path


def _url(fs: Any, path: str) -> str:
    return str(fs.unstrip_protocol(path))


def expand(given: str, log_name: re.Pattern[str]) -> list[str]:
    """The object URLs an input names, sorted; raises StorageError when there are none."""
    fs, path = _fs(given)
    try:
        fs.invalidate_cache()  # a prefix that grows between two --every runs
        if any(c in path for c in _MAGIC):
            found = [p for p in fs.glob(path) if fs.isfile(p)]
            if not found:
                raise StorageError(f"no object matches {given}")
            return sorted(_url(fs, p) for p in found)
        if given.endswith("/") or fs.isdir(path):
            found = []
            root = path.rstrip("/")
            for p in fs.find(root):
                relative = PurePosixPath(p[len(root) :].lstrip("/"))
                if any(part.startswith((".", "_")) for part in relative.parts):
                    continue
                if log_name.search(relative.name):
                    found.append(_url(fs, p))
            if not found:  # as for an empty local directory: a mistyped prefix is not "nothing new"
                from ingest.sources.read import LOG_PATTERNS

                raise StorageError(f"no log files in {given} (looked for {LOG_PATTERNS})")
            return sorted(found)
        if fs.isfile(path):
            return [_url(fs, path)]
    except StorageError:
        raise
    except (OSError, PermissionError) as exc:
        raise StorageError(f"cannot list {given}: {exc}") from None
    except Exception as exc:  # SDK errors (credentials, endpoint) are not OSErrors everywhere
        raise StorageError(f"cannot list {given}: {type(exc).__name__}: {exc}") from None
    raise StorageError(f"no such object or prefix: {given}")


def expand_inputs(inputs: list[str]) -> list[Source]:
    """The sources object storage inputs name (``SCHEMES`` in ingest.sources); raises StorageError."""
    from ingest.sources.read import _LOG_NAME, Source

    sources: list[Source] = []
    seen: set[str] = set()
    for given in inputs:
        for url in expand(given, _LOG_NAME):
            if url not in seen:
                seen.add(url)
                sources.append(Source(url, None, url, final=True))  # objects are written whole
    return sources


def open_url(url: str) -> BinaryIO:
    """A seekable binary stream of the object, read in ranges of READ_BLOCK bytes."""
    fs, path = _fs(url)
    return fs.open(path, "rb", block_size=READ_BLOCK, cache_type="readahead")  # type: ignore[no-any-return]


def head(url: str, size: int = HEAD_BYTES) -> bytes:
    """The object's first ``size`` bytes (decompressed when it is gzip), by range requests.

    Gzip is inflated as a local file is read (``GzipStream``): what decompresses before a
    fault is returned, and the fault is left for the read to report. Raises FileFault when
    nothing at all decompresses (damaged deflate data, or an object cut short before its
    first byte: objects are written whole, so it will never be finished).
    """
    fs, path = _fs(url)
    want = size
    while True:
        data = fs.cat_file(path, start=0, end=want)
        whole = len(data) < want  # the range held the whole object
        if data[:2] != b"\x1f\x8b":
            return data[:size]
        out = _inflate_start(data, size, whole)
        if len(out) >= size or b"\n" in out or whole or want >= 64 * size:
            return out[:size]
        want *= 4


def _inflate_start(data: bytes, size: int, whole: bool) -> bytes:
    from ingest.sources.read import GzipStream

    stream, out = GzipStream(io.BytesIO(data)), b""
    try:
        while len(out) < size and (block := stream.read(size - len(out))):
            out += block
    except EOFError:  # the range ended inside the gzip data: of the object, or of the request
        if whole and not out:
            raise FileFault("gzip data cut short (truncated) after 0 bytes: the rest is missing") from None
    except FileFault:
        if not out:
            raise
    return out


def first_line(url: str, limit: int) -> bytes | None:
    """The object's first line (its first ``limit`` bytes), newline included, by one range
    request; None when the object is empty. An object cannot grow, so a first line without
    its newline is whole (as the last line of a local file that cannot grow is). Raises
    FileFault (see ``head``)."""
    data = head(url, limit)
    newline = data.find(b"\n")
    if not data:
        return None
    return data[: newline + 1] if newline >= 0 else data[:limit]


def first_line_fingerprint(url: str, limit: int) -> str | None:
    """A hash of the first line (its first ``limit`` bytes), as a local file's starting with content.

    ``checkpoint.fingerprint`` looks past a blank start, as for local files.
    """
    first = first_line(url, limit)
    return None if first is None else blake2b(first.rstrip(b"\r\n"), digest_size=16).hexdigest()


def known_size(url: str) -> int | None:
    """The (decompressed, for gzip: modulo 2**32) size, from metadata and the gzip trailer."""
    fs, path = _fs(url)
    size = int(fs.size(path))
    if size >= 18 and fs.cat_file(path, start=0, end=2) == b"\x1f\x8b":
        return int.from_bytes(fs.cat_file(path, start=size - 4, end=size), "little")
    return size


def resolve(location: str, source: str) -> str:
    """A blob reference: a URL or absolute path as is, else relative to the source's folder."""
    if URL.match(location) or location.startswith("/"):
        return location
    parent = source.rsplit("/", 1)[0] if "/" in source else "."
    return f"{parent}/{location}"


def read_bytes(location: str) -> bytes:
    """A whole (small) object or local file: blob references of Azure ML's large payloads."""
    if is_url(location):
        fs, path = _fs(location)
        return fs.cat_file(path)  # type: ignore[no-any-return]
    with open(location, "rb") as fh:
        return fh.read()


def read_text(location: str) -> str:
    return read_bytes(location).decode("utf-8")
