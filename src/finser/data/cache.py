"""A decoded-audio cache: each (clip, version) is decoded, resampled, cropped and augmented once.

Layout: ``<root>/audio-<hash of AudioSpec and seed>/shard-<uuid>.npy`` (one float32 vector, every entry back to back)
plus ``shard-<uuid>.json`` (per entry: key, offset, length, crc32). A changed spec hashes to another folder, so it
is rebuilt. A shard is written to temporary names and renamed, index last, so a reader never sees half a shard; a lock
file makes runs building at once take turns, so none decodes a clip another has stored. Entries are checked on read
(crc32) and a damaged one is rebuilt.
Reads use ``os.pread`` on the ``.npy``: pages stay in the OS page cache, not in the process, so serving a store far
larger than RAM keeps the resident set small (``np.load(path, mmap_mode="r")`` opens a shard too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from finser.data.audio import AudioError, AudioSpec
from finser.data.augment import render, split_tag
from finser.data.locks import exclusive

log = logging.getLogger(__name__)

FORMAT = 1
SHARD_SAMPLES = 64 * 1024 * 1024  # 256 MB of float32 per shard
BYTES = 4


@dataclass(frozen=True)
class Entry:
    shard: str
    offset: int  # in samples, from the start of the shard's data
    length: int
    crc: int


def entry_key(path: str) -> str:
    """Name, size and modification time of the source file, plus the version: an edited file is a new entry."""
    source, version = split_tag(path)
    stat = Path(source).stat()
    return f"{Path(source).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{version}"


def _render_or_reason(path: str, spec: AudioSpec, seed: int) -> np.ndarray | str:
    try:
        return render(path, spec, seed)
    except AudioError as error:
        return str(error)


class DecodedCache:
    """Signals for one :class:`AudioSpec` (and augmentation seed), keyed by clip path (tagged for versions)."""

    def __init__(self, root: str | Path, spec: AudioSpec, seed: int = 0, workers: int = 1) -> None:
        self.spec, self.seed, self.workers = spec, seed, workers
        key = hashlib.sha1(json.dumps([FORMAT, asdict(spec), seed]).encode()).hexdigest()[:12]
        self.folder = Path(root) / f"audio-{key}"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "spec.json").write_text(json.dumps({"spec": asdict(spec), "seed": seed}, indent=2))
        self.entries: dict[str, Entry] = {}
        self.keys: dict[str, str] = {}
        self._data_offsets: dict[str, int] = {}
        self._files: dict[str, int] = {}
        self.refresh()

    def refresh(self) -> None:
        """Load every complete shard's index; a later shard overrides an earlier one (a rebuilt entry wins)."""
        indexes = sorted(self.folder.glob("shard-*.json"), key=lambda index: (index.stat().st_mtime_ns, index.name))
        for index in indexes:
            shard = index.with_suffix(".npy").name
            offset = self._data_offset(self.folder / shard)
            meta = json.loads(index.read_text())
            expected = offset + BYTES * meta["n_samples"] if offset is not None else -1
            if not (self.folder / shard).exists() or (self.folder / shard).stat().st_size != expected:
                log.warning("cache shard %s is damaged (size mismatch): its entries will be rebuilt", shard)
                continue
            self._data_offsets[shard] = offset
            for key, start, length, crc in meta["entries"]:
                self.entries[key] = Entry(shard, start, length, crc)

    @staticmethod
    def _data_offset(path: Path) -> int | None:
        """Byte offset of the data in a ``.npy`` file (after its header)."""
        try:
            with path.open("rb") as handle:
                np.lib.format.read_magic(handle)
                np.lib.format.read_array_header_1_0(handle)
                return handle.tell()
        except (OSError, ValueError):
            return None

    def key(self, path: str) -> str:
        if path not in self.keys:
            self.keys[path] = entry_key(path)
        return self.keys[path]

    def ensure(self, paths: Sequence[str]) -> dict[str, str]:
        """Build the missing entries; return path → reason for the files that cannot be used."""
        failures: dict[str, str] = {}
        missing = []
        for path in dict.fromkeys(paths):
            try:
                if self.key(path) not in self.entries:
                    missing.append(path)
            except OSError as error:
                failures[path] = f"{split_tag(path)[0]}: {error.strerror or error}"
        if missing:
            with exclusive(self.folder / ".build.lock"):  # concurrent runs take turns: none decodes twice
                self.refresh()  # another run may have built them while this one waited
                missing = [path for path in missing if self.key(path) not in self.entries]
                if missing:
                    log.info("decoding %d clips into %s", len(missing), self.folder)
                    failures.update(self._build(missing))
        return failures

    def _build(self, paths: list[str]) -> dict[str, str]:
        failures: dict[str, str] = {}
        pending: list[tuple[str, np.ndarray]] = []
        size = 0
        work = partial(_render_or_reason, spec=self.spec, seed=self.seed)
        if self.workers > 1:
            pool = ProcessPoolExecutor(self.workers)
            results = pool.map(work, paths, chunksize=8)
        else:
            pool, results = None, map(work, paths)
        try:
            for path, result in zip(paths, results, strict=True):
                if isinstance(result, str):
                    failures[path] = result
                    continue
                pending.append((self.key(path), result))
                size += result.size
                if size >= SHARD_SAMPLES:
                    self._write_shard(pending)
                    pending, size = [], 0
            if pending:
                self._write_shard(pending)
        finally:
            if pool is not None:
                pool.shutdown()
        return failures

    def _write_shard(self, signals: list[tuple[str, np.ndarray]]) -> None:
        """Write one shard of (entry key, signal) atomically: data to a temporary name, rename; then the index."""
        name = f"shard-{uuid.uuid4().hex}"
        total = sum(signal.size for _, signal in signals)
        temporary = self.folder / f".{name}.npy.tmp"
        data = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=(total,))
        rows, offset = [], 0
        for key, signal in signals:
            data[offset : offset + signal.size] = signal
            rows.append([key, offset, int(signal.size), zlib.crc32(signal.tobytes())])
            offset += signal.size
        data.flush()
        del data
        os.replace(temporary, self.folder / f"{name}.npy")
        index_temporary = self.folder / f".{name}.json.tmp"
        index_temporary.write_text(json.dumps({"n_samples": total, "entries": rows}))
        os.replace(index_temporary, self.folder / f"{name}.json")
        offset_bytes = self._data_offset(self.folder / f"{name}.npy")
        assert offset_bytes is not None
        self._data_offsets[f"{name}.npy"] = offset_bytes
        for key, start, length, crc in rows:
            self.entries[key] = Entry(f"{name}.npy", start, length, crc)

    def _fd(self, shard: str) -> int:
        if shard not in self._files:
            self._files[shard] = os.open(self.folder / shard, os.O_RDONLY)
        return self._files[shard]

    def length(self, path: str) -> int:
        return self.entries[self.key(path)].length

    def read(self, path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of one entry, read from disk (no crc check: for frames read many times)."""
        return self.read_entry(self.entries[self.key(path)], start, stop)

    def read_entry(self, entry: Entry, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.frombuffer(self.read_bytes(entry, start, stop), dtype=np.float32).copy()

    def read_bytes(self, entry: Entry, start: int = 0, stop: int | None = None) -> bytes:
        """Samples ``start:stop`` of one entry as raw float32 bytes: one ``pread``, no array."""
        stop = entry.length if stop is None else min(stop, entry.length)
        position = self._data_offsets[entry.shard] + BYTES * (entry.offset + start)
        return os.pread(self._fd(entry.shard), BYTES * (stop - start), position)

    def signal(self, path: str) -> np.ndarray:
        """One whole entry, checked against its crc32; a damaged entry is rebuilt and written to a new shard."""
        entry = self.entries[self.key(path)]
        samples = self.read(path)
        if zlib.crc32(samples.tobytes()) != entry.crc:
            log.warning("cache entry for %s is damaged (crc mismatch): rebuilding it", path)
            del self.entries[self.key(path)]
            failures = self._build([path])
            if failures:
                raise AudioError(failures[path])
            samples = self.read(path)
        return samples

    def verify(self) -> list[str]:
        """Check every entry's crc32 and rebuild the damaged ones; returns the keys that were rebuilt."""
        paths_by_key = {key: path for path, key in self.keys.items()}
        damaged = []
        for key, entry in list(self.entries.items()):
            position = self._data_offsets[entry.shard] + BYTES * entry.offset
            raw = os.pread(self._fd(entry.shard), BYTES * entry.length, position)
            if zlib.crc32(raw) != entry.crc:
                damaged.append(key)
                del self.entries[key]
        rebuild = [paths_by_key[key] for key in damaged if key in paths_by_key]
        if rebuild:
            self._build(rebuild)
        return damaged

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}  # file descriptors do not travel to worker processes
