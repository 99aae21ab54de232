"""Deterministic artifact bodies of any size, generated on the fly (no file on disk, no body in memory).

A seeded blob repeats one 1 MiB random base block; block k starts with a 16-byte header (seed, k), so a
byte served from the wrong offset or the wrong blob changes the checksum. Small real archives (a tar with
members) are given as ``data`` instead.
"""

from __future__ import annotations

import hashlib
import random
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache

BLOCK = 1 << 20
_HEADER = struct.Struct(">QQ")


@lru_cache(maxsize=8)
def _base_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK)


@dataclass
class Blob:
    blob_id: str
    size: int
    filename: str
    seed: int
    data: bytes | None = None
    _digests: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    modified: float = field(default_factory=time.time)

    @property
    def etag(self) -> str:
        """Strong tag of the content (size and seed), known without reading the body (a 2 GiB md5 would stall
        the first GET). Two blobs with the same seed and size hold the same bytes and share it."""
        return '"' + hashlib.md5(f"{self.size}:{self.seed}".encode()).hexdigest() + '"'

    @property
    def last_modified(self) -> str:
        return formatdate(self.modified, usegmt=True)

    def rebuild(self) -> None:
        """New bytes, same size and URL (a provider regenerating the file): new seed, ETag and Last-Modified."""
        with self._lock:
            self.seed = (self.seed + 1) & (2**63 - 1)
            if self.data is not None:
                self.data = bytes(b ^ 0x5A for b in self.data)
            self.modified = max(time.time(), self.modified + 1)
            self._digests.clear()

    def iter_range(self, start: int = 0, end: int | None = None, chunk: int = BLOCK) -> Iterator[bytes | memoryview]:
        """Yield the bytes of ``[start, end)`` (end exclusive, default the size) in pieces of at most ``chunk``."""
        end = self.size if end is None else min(end, self.size)
        if self.data is not None:
            view = memoryview(self.data)
            for pos in range(start, end, chunk):
                yield view[pos : min(pos + chunk, end)]
            return
        # The header and views of the base block go out as they are: building each 1 MiB block would copy it
        # twice, and the emulator's CPU is taken from the client it serves on the same machine.
        base, head = memoryview(_base_block(self.seed)), _HEADER.size
        seed64 = self.seed & (2**64 - 1)
        pos = start
        while pos < end:
            k, offset = divmod(pos, BLOCK)
            header = _HEADER.pack(seed64, k)
            stop = min(BLOCK, offset + end - pos)
            for piece in range(offset, stop, chunk):
                piece_end = min(piece + chunk, stop)
                if piece < head:
                    yield header[piece : min(piece_end, head)]
                if piece_end > head:
                    yield base[max(piece, head) : piece_end]
            pos += stop - offset

    @property
    def md5(self) -> str:
        return self._digest("md5")

    @property
    def sha256(self) -> str:
        return self._digest("sha256")

    def _digest(self, name: str) -> str:
        """Both digests in one go (two threads: hashlib releases the GIL), computed once per blob."""
        with self._lock:
            if not self._digests:
                with ThreadPoolExecutor(2) as pool:
                    futures = {algo: pool.submit(self._hash, algo) for algo in ("md5", "sha256")}
                    self._digests.update({algo: future.result() for algo, future in futures.items()})
            return self._digests[name]

    def _hash(self, algo: str) -> str:
        h = hashlib.new(algo)
        for piece in self.iter_range(0, self.size):
            h.update(piece)
        return h.hexdigest()


class BlobStore:
    """Blobs by id; creation is cheap whatever the size."""

    def __init__(self) -> None:
        self._blobs: dict[str, Blob] = {}

    def create(self, size: int | None = None, filename: str = "artifact.bin", seed: int | None = None,
               data: bytes | None = None) -> Blob:
        if data is not None:
            size = len(data)
        if size is None or size < 0:
            raise ValueError("a blob needs a non-negative size or data")
        blob_id = uuid.uuid4().hex
        seed = random.getrandbits(63) if seed is None else int(seed)
        blob = Blob(blob_id=blob_id, size=size, filename=filename, seed=seed, data=data)
        self._blobs[blob_id] = blob
        return blob

    def get(self, blob_id: str) -> Blob | None:
        return self._blobs.get(blob_id)

    def clear(self) -> None:
        self._blobs.clear()
