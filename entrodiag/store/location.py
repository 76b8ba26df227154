"""Where a run lives: a local folder, or a URL on an object store.

A run location is a local path or a URL with one of the schemes in ``URL_SCHEMES``:
``s3://bucket/prefix/run`` (AWS S3 and any S3-compatible store), ``gs://bucket/prefix/run``
(Google Cloud Storage) or ``file:///absolute/path``. Filesystems are pyarrow's
(``pyarrow.fs``); credentials, region and endpoint come only from the standard environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ...), never from a run's files.

Anything else with ``://`` (``http://``, ``hdfs://``, a typo such as ``s3:/bucket``) is refused
with a message, so that a URL is never taken for a local folder named ``s3:``. So is a URL with a
query string (``s3://bucket/runs?endpoint_override=HOST``) or with credentials before the bucket
(``s3://KEY:SECRET@bucket``): pyarrow would take the endpoint, scheme or keys from them, and a
location typed into the dashboard or written in a file would then send requests, signed with this
machine's credentials, to a host of its choosing. The environment is the one place for them.

Paths are literal: the part of a URL after the bucket names objects exactly as written, as the
AWS CLI takes it (``s3://bucket/runs/lr[1e-6]`` is the prefix ``runs/lr[1e-6]``; ``[``, ``*``,
``?``, ``#`` and ``%`` are characters of the name, never a pattern, a query string or an
escape), and every reader hands explicit file lists to polars and DuckDB, never a pattern.

Object stores have no rename and no partial objects: an object written here appears whole, under
its final name, in one PUT (``Location.write_bytes``).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow.fs as pafs

#: URL schemes a run location may use.
URL_SCHEMES = ("s3", "gs", "gcs", "file")
#: A bucket name (S3 and GCS allow less; anything else, e.g. a query string, is refused).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_QUERY = re.compile(r"\?[A-Za-z_][A-Za-z0-9_.-]*=")  # ?name=value: the shape of a query string

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)")


class LocationError(ValueError):
    """A run location that cannot be used; the message says why and what to do."""


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL (``s3://...``, ``gs://...``, ``file://...``), not a local path.

    Raises ``LocationError`` for a string that looks like a URL of an unsupported scheme, or a
    supported scheme without ``//`` (``s3:/bucket``)."""
    if isinstance(location, Path):
        return False
    m = _SCHEME.match(str(location))
    if not m:
        return False
    scheme, slashes = m.group(1).lower(), m.group(2)
    if scheme in URL_SCHEMES:
        if len(slashes) < 2:
            raise LocationError(f"{location}: a URL needs '{scheme}://' (two slashes), e.g. {scheme}://bucket/runs/a")
        return True
    if len(slashes) >= 2:
        raise LocationError(
            f"{location}: unsupported URL scheme {scheme!r}; a run location is a local path or a URL "
            f"starting with {', '.join(s + '://' for s in URL_SCHEMES)}"
        )
    return False  # "C:..." or "name:with:colons" without slashes: a local path


@dataclass(frozen=True)
class Location:
    """A folder or file: a pyarrow filesystem and a path inside it, plus the text the user gave.

    ``url`` is what to show a user and to join children onto (a local path stays a plain path);
    ``fs_path`` is the path inside ``fs``.
    """

    url: str
    fs: pafs.FileSystem
    fs_path: str

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine's filesystem (including ``file://`` URLs)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    @cached_property
    def local_path(self) -> Path:
        """The ``pathlib.Path`` of a local location; ``LocationError`` for an object store."""
        if not self.is_local:
            raise LocationError(f"{self.url} is on an object store, not a local path")
        return Path(self.fs_path)

    @property
    def name(self) -> str:
        return self.fs_path.rstrip("/").rsplit("/", 1)[-1]

    def child(self, *names: str) -> Location:
        """The location ``names`` below this one."""
        tail = "/".join(n.strip("/") for n in names)
        return Location(f"{self.url.rstrip('/')}/{tail}", self.fs, f"{self.fs_path.rstrip('/')}/{tail}")

    def __truediv__(self, name: str) -> Location:
        """``loc / "steps"``: the same as ``child``, so run code can join names as on a ``Path``."""
        return self.child(name)

    def relative_to(self, other: Location) -> str:
        """This location's path below ``other`` (``ValueError`` when it is not below it)."""
        base = other.fs_path.rstrip("/") + "/"
        if type(self.fs) is not type(other.fs) or not self.fs_path.startswith(base):
            raise ValueError(f"{self.url} is not below {other.url}")
        return self.fs_path[len(base):]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return False
        return (type(self.fs), self.fs_path) == (type(other.fs), other.fs_path)

    def __hash__(self) -> int:
        return hash((type(self.fs).__name__, self.fs_path))

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.fs_path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        """A folder; on an object store, a prefix with at least one object under it."""
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def list(self, *, recursive: bool = False) -> list[pafs.FileInfo]:
        """What lies in this folder (empty if it does not exist), sorted by path."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.fs_path, allow_not_found=True, recursive=recursive))
        return sorted(infos, key=lambda i: i.path)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.fs_path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        """Write the whole object in one go: on an object store one PUT under its final name, so a
        reader sees the old object or the new one, never a part of it. (Local folders keep
        the writer's own temp-file, fsync and rename discipline; use this on object stores.)"""
        with self.fs.open_output_stream(self.fs_path) as f:
            f.write(data)

    def delete(self) -> None:
        self.fs.delete_file(self.fs_path)

    def __str__(self) -> str:
        return self.url


def locate(location: str | os.PathLike | Location) -> Location:
    """The ``Location`` of a local path or a URL (see the module docstring).

    Raises ``LocationError`` with an actionable message for an unsupported scheme or an object
    store that cannot be reached with the environment's settings."""
    if isinstance(location, Location):
        return location
    if not is_url(location):
        path = Path(location).expanduser()
        return Location(str(path), pafs.LocalFileSystem(), str(path.absolute()))
    url = str(location).rstrip("/") or str(location)
    check_url(url)
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    authority, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    if scheme == "file":
        if authority not in ("", "localhost"):
            raise LocationError(f"{url}: a file:// URL names a folder of this machine: file:///absolute/path")
        return Location(url, pafs.LocalFileSystem(), path or "/")
    if not _BUCKET.fullmatch(authority):
        raise LocationError(f"{url}: {authority!r} is not a bucket name; a run location is "
                            f"{scheme}://bucket/path (endpoint and credentials come from the environment, "
                            "never from the URL)")
    try:  # the filesystem of the bucket; the path below it is the user's, taken literally
        fs, bucket = pafs.FileSystem.from_uri(f"{scheme}://{authority}")
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        raise LocationError(f"{url}: cannot open this object store ({e}); check the URL and the "
                            "credentials/endpoint in the environment (AWS_*, GOOGLE_*)") from None
    return Location(url, fs, bucket.rstrip("/") + path)


def check_url(url: str) -> None:
    """Refuse (``LocationError``) a URL that carries store settings: a query string
    (``?endpoint_override=HOST&scheme=http``: pyarrow would read the endpoint, scheme, region or keys
    from it) or credentials before the bucket. Paths are otherwise literal, so a ``?`` inside a
    name (``runs/q?``) stays a character of the name; what is refused is ``?NAME=VALUE``, the shape
    of a query string. ``locate`` checks it before any store is opened, so nothing is sent; callers
    that only want the check (the dashboard's root box) call it alone."""
    netloc = urllib.parse.urlsplit(url).netloc
    settings = ("query string" if _QUERY.search(url) else
                "credentials before the bucket" if "@" in netloc else None)
    if settings:
        raise LocationError(
            f"{url}: a run URL takes no {settings}; the endpoint, region and credentials of an object "
            "store come only from the environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, ...)")


def run_path(location: str | os.PathLike) -> Path | str:
    """How to hold a run location given by a user: a ``Path`` for a local folder (``file://``
    URLs included), the URL text for an object store."""
    if not is_url(location):
        return Path(location)
    loc = locate(location)
    return loc.local_path if loc.is_local else loc.url


def check_store(location: str | os.PathLike | Location) -> Location:
    """The ``Location`` of ``location``, after checking that its object store answers and its
    bucket exists (a local location is returned as it is). Raises ``LocationError`` with the
    reason, so a run that cannot be written fails at once with one line, not at its first write."""
    loc = locate(location)
    if loc.is_local:
        return loc
    bucket = loc.fs_path.split("/", 1)[0]
    scheme = loc.url.split("://", 1)[0]
    try:
        found = loc.fs.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as e:
        hint = ""
        if scheme == "s3" and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            hint = " (no AWS_ACCESS_KEY_ID or AWS_PROFILE is set)"
        raise LocationError(f"{loc.url}: the object store cannot be reached or refused the request "
                            f"({' '.join(str(e).split())}); check the endpoint and credentials in the environment"
                            f"{hint}: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                            "GOOGLE_APPLICATION_CREDENTIALS, ...") from None
    if not found:
        raise LocationError(f"{loc.url}: the bucket {scheme}://{bucket} does not exist (or these credentials "
                            "cannot see it); create it first")
    return loc
