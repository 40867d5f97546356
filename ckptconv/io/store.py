"""Object storage: a path that is a URL (``s3://bucket/key``, ``memory://...``) of a file system
fsspec knows, read by range and written whole. torch-free; fsspec is imported only for a URL, so a
local path takes exactly the code path it took before URLs existed.

- A URL is a ``Url``, never a ``Path``: it has no ``__fspath__``, so no local file call can ever be
  made with it by mistake (``Path('s3://b/k')`` would be the local ``s3:/b/k``).
- The file system's package must be installed (``pip install 'ckptconv[s3]'``): else a usage error
  naming it. Endpoint and credentials come from the store's own configuration (for S3:
  ``AWS_ENDPOINT_URL``, the environment, a profile, an instance role), never from the URL.
- What a URL shows (``str(url)``, every message and report) has no user part and no query: a
  credential or a signed URL's signature never reaches an output, a report or an error line, and a
  store's error text is scrubbed of the credentials in the environment before it is shown.
- A source is read into an unnamed temp file in the system temp directory (gone when the process
  ends, however it ends), by range: ``RemoteFile.fetch``; ``ranged`` says which ranges.
- An output is written and checked locally first, in such an unnamed temp file, then sent as one
  object (``PendingUpload``): a single PUT that appears whole or not at all, with ``If-None-Match: *``
  on S3 without ``--force``, so an existing object is never replaced.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError

EXTRA = "s3"  # pip install 'ckptconv[s3]'
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: C:\ and C:/ stay local paths
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "hf": "huggingface_hub"}
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN")
GAP = 1024  # ranges closer than this are read by one request: fewer requests, a few bytes more
BUDGET = 64  # and 1/64 of the object at most, per fetch, read in between to join more ranges


@dataclass(frozen=True)
class Url:
    """A location on a file system fsspec resolves; ``str()`` is what may be shown (no user, no query)."""

    text: str  # as given: the query of a signed URL stays here, and is never shown

    @property
    def scheme(self) -> str:
        return SCHEME.match(self.text).group(1).lower()

    def __str__(self) -> str:
        rest = self.text.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        host, _, key = rest.partition("/")
        return f"{self.scheme}://{host.rpartition('@')[2]}" + (f"/{key}" if key else "")

    @property
    def name(self) -> str:
        return str(self).rstrip("/").rpartition("/")[2]

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1]


def location(text: str | os.PathLike) -> Path | Url:
    """A path argument: a ``Url`` when it starts with a scheme (``file://`` is a local path), else the ``Path`` it always was."""
    if isinstance(text, (Url, Path)):
        return text
    text = os.fspath(text)
    if not SCHEME.match(text):
        return Path(text)
    if SCHEME.match(text).group(1).lower() == "file":
        return Path(text.split("://", 1)[1])
    return Url(text)


def is_url(path: Any) -> bool:
    return isinstance(path, Url)


def shown(path: Path | Url) -> str:
    """A path as a config names it: a URL as it is shown, a local path absolute."""
    return str(path) if is_url(path) else os.path.abspath(path)


def scrub(text: str) -> str:
    """A store's error text, without a query string or any credential the environment holds."""
    text = re.sub(r"\?\S*", "", text)
    for name in SECRET_ENV:
        if len(value := os.environ.get(name, "")) >= 4:
            text = text.replace(value, "***")
    return text


def filesystem(url: Url) -> tuple[Any, str]:
    """(fsspec file system, path within it) of ``url``; a usage error when its package is missing."""
    package = PACKAGES.get(url.scheme, "fsspec")
    fix = f"pip install 'ckptconv[{EXTRA}]'" if package in ("s3fs", "fsspec") else f"pip install {package}"
    try:
        import fsspec.core
    except ImportError:
        raise UsageError(f"reading or writing {url.scheme}:// URLs needs fsspec, which is not installed", fix=fix, path=str(url)) from None
    try:
        return fsspec.core.url_to_fs(url.text, skip_instance_cache=True)
    except ImportError:
        raise UsageError(f"{url.scheme}:// URLs need the {package} package, which is not installed", fix=fix, path=str(url)) from None
    except ValueError as e:
        raise UsageError(f"unknown URL scheme {url.scheme}:// ({scrub(str(e))})", fix="use s3:// (or another scheme fsspec knows), or a local path", path=str(url)) from None


def failure(e: BaseException, doing: str, url: Url, bucket: str = "") -> Exception:
    """A store's exception as the one line a run ends with (what, why, how to fix)."""
    name = type(e).__name__
    if isinstance(e, FileNotFoundError) and bucket:
        return UsageError(f"the bucket {bucket!r} does not exist", fix="create it first, or check the URL", path=str(url))
    if isinstance(e, PermissionError):
        return OutputError(f"{doing} was denied (access denied); nothing was written", fix="check the credentials' permissions for this bucket", path=str(url))
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return UsageError(f"{doing} needs credentials, and none were found", fix="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", path=str(url))
    return OutputError(f"{doing} failed ({name}: {scrub(str(e))[:200]}); nothing was written", fix="check the URL and the store, then run again", path=str(url))


def bucket_of(fs: Any, path: str) -> str:
    """The bucket (S3) or top folder of a path within a file system."""
    return fs._strip_protocol(path).lstrip("/").split("/", 1)[0]


def info(url: Url) -> tuple[Any, str, dict | None]:
    """(file system, path, the object's info or None when there is none); a missing bucket is a usage error."""
    fs, path = filesystem(url)
    bucket = bucket_of(fs, path)
    try:
        if url.scheme in PACKAGES and not fs.exists(bucket):  # an object store: the bucket must exist (a prefix needs no creating)
            raise UsageError(f"the bucket {bucket!r} does not exist", fix="create it first, or check the URL", path=str(url))
        return fs, path, fs.info(path)
    except FileNotFoundError:
        return fs, path, None
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - any store's client: one line, scrubbed
        raise failure(e, "reading", url, bucket) from None


def stamp_of(found: dict) -> tuple:
    """What says an object is unchanged: its size and ETag (S3), else its times."""
    return found.get("size"), found.get("ETag") or found.get("etag"), str(found.get("LastModified") or found.get("mtime") or found.get("created"))


def check_source(url: Url) -> tuple[Any, str, dict]:
    """The object exists and is a file: (file system, path, its info)."""
    fs, path, found = info(url)
    if found is None:
        raise UsageError("no such object", fix="check the URL (bucket and key)", path=str(url))
    if found.get("type") != "file":
        raise UsageError("is a directory (a prefix), not a checkpoint object", fix="give the URL of the .pyth/.pth object", path=str(url))
    return fs, path, found


def check_outputs(planned: list, inputs: list, force: bool) -> None:
    """URLs a run will write: a file output each (a folder is not written to a store yet), never an
    input, in a bucket that exists, and not existing unless ``force``."""
    seen: set[str] = set()
    for p in planned:
        if p.folder:
            raise UsageError(f"{p.what} is a model folder, and folders are not written to object storage yet", fix="write the folder locally, then copy it", path=str(p.path))
        if str(p.path) in seen or any(is_url(i) and str(i) == str(p.path) for i in inputs):
            raise UsageError(f"{p.what} is an input or another output", fix="give each output its own URL; ckptconv never overwrites its input", path=str(p.path))
        seen.add(str(p.path))
        _, _, found = info(p.path)
        if found is not None and found.get("type") != "file":
            raise UsageError(f"{p.what} is a prefix holding objects, not an object name", fix="give an object name ending in .pth or .safetensors", path=str(p.path))
        if found is not None and not force:
            raise UsageError("the output object exists", fix="pass --force (the API: force=True) to replace it; the old object stays until the new one is complete", path=str(p.path))


def unnamed_temp() -> tuple[int, Path]:
    """An unnamed temp file in the system temp directory (removed when its last descriptor closes,
    however the process ends), and the name it is read by (``/proc/self/fd/N``)."""
    f = tempfile.TemporaryFile()
    fd = os.dup(f.fileno())
    f.close()
    proc = Path(f"/proc/self/fd/{fd}")
    if not proc.exists():
        os.close(fd)
        raise UsageError("reading or writing URLs needs /proc (Linux) for its unnamed temp files", fix="copy the object locally first")
    return fd, proc


def coalesce(ranges: list[tuple[int, int]], budget: int = 0) -> list[tuple[int, int]]:
    """Sorted (start, end) ranges, merged where they touch or lie closer than ``GAP``, then across
    the smallest gaps left while the bytes read in between stay within ``budget``: fewer requests
    (a zip's local headers are hundreds of tiny ranges) for a bounded few bytes more."""
    out: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1] + GAP:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    gaps = sorted((out[i + 1][0] - out[i][1], i) for i in range(len(out) - 1))
    join, spent = set(), 0
    for size, i in gaps:
        if spent + size > budget:
            break
        join.add(i)
        spent += size
    merged = [(out[0][0], out[0][1])] if out else []
    for i in range(1, len(out)):
        if i - 1 in join:
            merged[-1] = (merged[-1][0], out[i][1])
        else:
            merged.append((out[i][0], out[i][1]))
    return merged


class RemoteFile:
    """An object read by range into an unnamed local temp file of its size: the ranges fetched hold
    its bytes, the rest is a hole nobody reads. It stands where a local input's ``files.Opened``
    does: ``path`` names it in messages, ``reads`` is the local name every reader opens,
    ``unchanged()`` asks the store again. ``bytes_read`` and ``requests`` say what it cost."""

    ranged = True

    def __init__(self, url: Url):
        import weakref

        self.fs, self.key, found = check_source(url)
        self.path = url
        self.size, self.stamp = int(found["size"]), stamp_of(found)
        self.fd, self.reads = unnamed_temp()
        weakref.finalize(self, os.close, self.fd)
        os.ftruncate(self.fd, self.size)
        self.bytes_read = self.requests = 0
        self._have: set[tuple[int, int]] = set()

    def fetch(self, ranges: list[tuple[int, int]]) -> None:
        """Read these (start, end) ranges of the object into the temp file (those not read yet, close ones in one request)."""
        wanted = coalesce([(max(0, a), min(b, self.size)) for a, b in ranges if (a, b) not in self._have], self.size // BUDGET)
        if not wanted:
            return
        try:
            blocks = self.fs.cat_ranges([self.key] * len(wanted), [a for a, _ in wanted], [b for _, b in wanted], on_error="raise")
        except Exception as e:  # noqa: BLE001 - any store's client: one line, scrubbed
            raise failure(e, "reading", self.path) from None
        for (start, end), data in zip(wanted, blocks):
            if len(data) != end - start:
                raise OutputError(f"the store returned {len(data)} bytes for a range of {end - start}: the object changed while it was read",
                                  fix="convert it again once it stays put", path=str(self.path))
            os.pwrite(self.fd, data, start)
            self.bytes_read += len(data)
        self.requests += len(wanted)
        self._have.update(ranges)

    def fetch_all(self) -> None:
        self.fetch([(0, self.size)])

    def unchanged(self) -> bool:
        """The object is still the one read (same size and ETag or time)."""
        _, _, found = info(self.path)
        return found is not None and stamp_of(found) == self.stamp

    def read_stats(self) -> dict[str, int]:
        return {"bytes": self.bytes_read, "size": self.size, "requests": self.requests}


SINGLE_PUT = 5 << 30  # S3's largest single PUT; beyond it a multipart upload, completed or aborted


def _md5(fd: int) -> str:
    """Content-MD5 of the temp file: the store refuses a body that is not these bytes (a retry that
    sent less, a changed file), so the object is what was verified, byte for byte."""
    import base64
    import hashlib

    h, pos = hashlib.md5(usedforsecurity=False), 0
    while block := os.pread(fd, 8 << 20, pos):
        h.update(block)
        pos += len(block)
    return base64.b64encode(h.digest()).decode()


def _put_s3(fs: Any, key: str, fd: int, local: Path, size: int, replace: bool) -> None:
    """One object on S3: a single PUT (If-None-Match: * unless ``replace``), or beyond 5 GiB s3fs's
    multipart upload, completed with the same condition or aborted."""
    if size > SINGLE_PUT:
        fs.put_file(str(local), key, mode="overwrite" if replace else "create")
        return
    bucket, name, _ = fs.split_path(key)
    match = {} if replace else {"IfNoneMatch": "*"}
    with open(local, "rb") as body:
        fs.call_s3("put_object", Bucket=bucket, Key=name, Body=body, ContentLength=size, ContentMD5=_md5(fd), **match)
    fs.invalidate_cache(key)


def _put_other(fs: Any, key: str, local: Path, replace: bool) -> None:
    """Another fsspec store: no conditional write there, so the name is checked just before the copy."""
    if not replace and fs.exists(key):
        raise FileExistsError(key)
    fs.put_file(str(local), key)


def upload(url: Url, fd: int, local: Path, size: int, replace: bool) -> None:
    """The verified temp file as the object ``url``, whole or not at all."""
    fs, key = filesystem(url)
    try:
        if url.scheme in ("s3", "s3a"):
            _put_s3(fs, key, fd, local, size, replace)
        else:
            _put_other(fs, key, local, replace)
    except FileExistsError:
        raise UsageError("the output object appeared while converting (another run?)", fix="pass --force to replace it", path=str(url)) from None
    except Exception as e:  # noqa: BLE001 - any store's client: one line, scrubbed
        raise failure(e, "writing the object", url, bucket_of(fs, key)) from None


class PendingUpload:
    """``files.PendingWrite`` for a URL: written to an unnamed local temp file (``tmp`` is its
    name: the checks read it back), and published by ``commit()`` as one object; ``abort()``
    drops it. Nothing is ever visible under the URL before ``commit()``."""

    def __init__(self, url: Url):
        self.path = url
        self.fd, self.tmp = unnamed_temp()
        self.size = 0

    def write(self, write):
        from ..errors import io_error
        from ..signals import deferred

        try:
            with deferred(), os.fdopen(os.dup(self.fd), "r+b") as f:
                result = write(f)
                f.flush()
                self.size = f.tell()
        except OSError as e:
            self.abort()
            raise io_error(e, "writing the local copy", self.path) from None
        return result

    def commit(self, *, replace: bool = True) -> int:
        try:
            upload(self.path, self.fd, self.tmp, self.size, replace)
        finally:
            self.abort()
        return self.size

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
