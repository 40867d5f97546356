"""Which byte ranges of a checkpoint on object storage a run reads (``store.RemoteFile``): a zip
checkpoint's central directory, each record's local header and the small records (``data.pkl``,
``byteorder``, ``version``), then only the records of the weight sets used
(``Checkpoint.fetch``), never the optimizer state; the legacy format, which has no index, whole.
With those ranges in its temp file, the object reads exactly as a local file does: the same
``zipindex``, the same CRC-32 checks, the same memory-mapped tensors. torch-free.
"""

from __future__ import annotations

import struct

from ..errors import FormatError
from .store import RemoteFile, Url
from .zipindex import ZIP_MAGIC

HEAD = 4096  # the format is told from the first 512 bytes; a safetensors header's length from the first 8
TAIL = (64 << 10) + 22 + 20 + 56  # the end record with the longest comment, and the zip64 locator and record before it
RECORD_SLACK = 256  # a local header's extra field (torch pads data to 64 bytes) is at most this long
EOCD, ZIP64_LOCATOR = b"PK\x05\x06", b"PK\x06\x07"


def open_remote(url: Url) -> RemoteFile:
    """The object at ``url`` with what any reader needs fetched: its head, then its index (zip),
    its header (safetensors), or all of it (the legacy format)."""
    remote = RemoteFile(url)
    remote.fetch([(0, HEAD)])
    head = _read(remote, 0, min(HEAD, remote.size))
    if head.startswith(ZIP_MAGIC):
        _stage_zip(remote)
    elif len(head) >= 8 and 8 + (n := int.from_bytes(head[:8], "little")) <= remote.size and head[8:9] == b"{":
        remote.fetch([(0, 8 + n)])
    else:
        remote.fetch_all()
    return remote


def _read(remote: RemoteFile, offset: int, n: int) -> bytes:
    import os

    return os.pread(remote.fd, n, offset)


def _directory(remote: RemoteFile) -> tuple[int, int]:
    """(offset, size) of the zip's central directory, from its end record (zip64's where torch wrote one)."""
    start = max(0, remote.size - TAIL)
    remote.fetch([(start, remote.size)])
    tail = _read(remote, start, remote.size - start)
    at = tail.rfind(EOCD)
    if at < 0 or len(tail) - at < 22:
        raise FormatError("truncated or corrupt zip checkpoint (no end of central directory)", fix="download or copy it again", path=str(remote.path))
    size, offset = struct.unpack("<II", tail[at + 12 : at + 20])
    if (size == 0xFFFFFFFF or offset == 0xFFFFFFFF) and at >= 20 and tail[at - 20 : at - 16] == ZIP64_LOCATOR:
        (record,) = struct.unpack("<Q", tail[at - 12 : at - 4])
        remote.fetch([(record, record + 56)])
        size, offset = struct.unpack("<QQ", _read(remote, record + 40, 16))
    if offset + size > remote.size:
        raise FormatError("truncated or corrupt zip checkpoint (its central directory lies past its end)", fix="download or copy it again", path=str(remote.path))
    return offset, size


def _stage_zip(remote: RemoteFile) -> None:
    """The central directory, every local header (torch reads each to place its record), and every
    record that is not a tensor's storage (data.pkl, byteorder, version), whole."""
    import zipfile

    offset, size = _directory(remote)
    remote.fetch([(offset, offset + size)])
    try:
        with zipfile.ZipFile(remote.reads) as zf:
            infos = zf.infolist()
    except Exception as e:  # noqa: BLE001 - zipfile raises many types on corrupt bytes
        raise FormatError(f"truncated or corrupt zip checkpoint ({type(e).__name__})", fix="download or copy it again", path=str(remote.path)) from None
    ranges = []
    for i in infos:
        header = i.header_offset + 30 + len(i.filename.encode("utf-8"))
        storage = "/data/" in f"/{i.filename}" and i.filename.rsplit("/", 1)[-1].isdigit()
        ranges.append((i.header_offset, header if storage else header + RECORD_SLACK + i.file_size))
    remote.fetch(ranges)
