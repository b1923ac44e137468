"""A decoded-audio cache: each (clip, version) is decoded, resampled, cropped and augmented once.

Layout: ``<root>/audio-<hash of AudioSpec and seed>/shard-<uuid>.npy`` (one float32 vector, every entry back to back)
plus ``shard-<uuid>.json`` (per entry: key, offset, length, crc32). A changed spec hashes to another folder, so it
is rebuilt. A shard is written to temporary names and renamed, index last, so a reader never sees half a shard; a lock
file makes runs building at once take turns, so none decodes a clip another has stored; whoever holds it also removes
what killed writers left (temporaries, damaged shards).
Nothing damaged is served: each entry is verified (crc32, finite samples) once per process before its first use, by
:meth:`DecodedCache.ensure`, which every data set calls while it is built (before DataLoader workers fork); a damaged
entry is decoded again from its source file, or the clip is skipped with its reason. Reads after that are unchecked.
Reads use ``os.pread`` on the ``.npy``: pages stay in the OS page cache, not in the process, so serving a store far
larger than RAM keeps the resident set small (``np.load(path, mmap_mode="r")`` opens a shard too).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from finser.console import track
from finser.cores import parallel_map, usable_cores
from finser.data.audio import AudioError, AudioSpec
from finser.data.augment import render, split_tag
from finser.data.labels import split_segment
from finser.data.locks import exclusive, read_json, remove_stale_temporaries
from finser.errors import FinserError

log = logging.getLogger(__name__)

FORMAT = 2  # 2: a clip that ends before the offset is cut from its start (was all zeros)
SHARD_SAMPLES = 64 * 1024 * 1024  # 256 MB of float32 per shard
BYTES = 4


@dataclass(frozen=True)
class Entry:
    shard: str
    offset: int  # in samples, from the start of the shard's data
    length: int
    crc: int


def entry_key(path: str) -> str:
    """Name, size and modification time of the source file, its segment and the version: an edited file is a new
    entry, and so is each cut of one file (``d.wav#t=1,2`` and ``d.wav#t=2,3``)."""
    source, version = split_tag(path)
    file, _, _ = split_segment(source)
    stat = Path(file).stat()
    return f"{Path(file).resolve()}{source[len(file) :]}|{stat.st_size}|{stat.st_mtime_ns}|{version}"


def _modified(path: Path) -> tuple[int, str]:
    """Sort key of shard indexes, oldest first; one a build removed meanwhile sorts first (then reads as missing)."""
    try:
        return path.stat().st_mtime_ns, path.name
    except FileNotFoundError:
        return -1, path.name


def _render_or_reason(path: str, spec: AudioSpec, seed: int) -> np.ndarray | str:
    try:
        return render(path, spec, seed)
    except AudioError as error:
        return str(error)


def _decode_isolated(work: Callable[[str], np.ndarray | str], path: str) -> np.ndarray | str:
    """One file decoded in a process of its own, so a decoder crash is this file's reason, not the run's end."""
    with ProcessPoolExecutor(1) as pool:
        try:
            return pool.submit(work, path).result()
        except BrokenProcessPool:
            return f"{split_tag(path)[0]}: the decoding process died while decoding this file (a crash in the decoder)"


def decode_all(work: Callable[[str], np.ndarray | str], paths: list[str], workers: int) -> dict[str, np.ndarray | str]:
    """Each path's signal or reason. When a worker dies the pool cannot say on which file, so the files not yet
    decoded are decoded again one process each: the one that kills its process is skipped with that reason."""
    results: dict[str, np.ndarray | str] = {}
    try:
        decoded = track(parallel_map(work, paths, workers), len(paths), "decoding clips", log)
        for path, result in zip(paths, decoded, strict=False):  # stops early when a worker dies
            results[path] = result
    except BrokenProcessPool:
        remaining = [path for path in paths if path not in results]
        log.warning("a decoding process died: decoding the %d remaining clips one process each", len(remaining))
        results.update((path, _decode_isolated(work, path)) for path in remaining)
    return results


class DecodedCache:
    """Signals for one :class:`AudioSpec` (and augmentation seed), keyed by clip path (tagged for versions).

    Missing clips are decoded and augmented by ``workers`` processes (None: one per usable core).
    """

    def __init__(self, root: str | Path, spec: AudioSpec, seed: int = 0, workers: int | None = None) -> None:
        self.spec, self.seed, self.workers = spec, seed, workers or usable_cores()
        key = hashlib.sha1(json.dumps([FORMAT, asdict(spec), seed]).encode()).hexdigest()[:12]
        self.folder = Path(root) / f"audio-{key}"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "spec.json").write_text(json.dumps({"spec": asdict(spec), "seed": seed}, indent=2))
        self.entries: dict[str, Entry] = {}
        self.keys: dict[str, str] = {}
        self.verified: set[Entry] = set()  # checked in this process: served unchecked from then on
        self.damaged: set[Entry] = set()  # never served again, even when a refresh reads their index anew
        self.damaged_shards: set[Path] = set()  # indexes of shards that cannot be read: removed by the next build
        self._data_offsets: dict[str, int] = {}
        self._files: dict[str, int] = {}
        self.refresh()

    def refresh(self) -> None:
        """Load every complete shard's index; a later shard overrides an earlier one (a rebuilt entry wins). A shard
        whose index or data is damaged counts as missing, so its clips are decoded again."""
        for index in sorted(set(self.folder.glob("shard-*.json")) - self.damaged_shards, key=_modified):
            shard = index.with_suffix(".npy")
            meta = read_json(index, "its clips are decoded again")
            offset = self._data_offset(shard)
            if meta is not None and (offset is None or shard.stat().st_size != offset + BYTES * meta["n_samples"]):
                log.warning("cache shard %s is damaged (size mismatch): its clips are decoded again", shard)
                meta = None
            if meta is None:
                self.damaged_shards.add(index)
                continue
            self._data_offsets[shard.name] = offset
            for key, start, length, crc in meta["entries"]:
                entry = Entry(shard.name, start, length, crc)
                if entry not in self.damaged:
                    self.entries[key] = entry

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
        """Verify the entries of ``paths`` (once per process) and build the missing and damaged ones; return path →
        reason for the files that cannot be used."""
        failures: dict[str, str] = {}
        missing = []
        for path in dict.fromkeys(paths):
            try:
                if not self._intact(self.key(path)):
                    missing.append(path)
            except OSError as error:
                failures[path] = f"{split_tag(path)[0]}: {error.strerror or error}"
        if missing:
            with exclusive(self.folder / ".build.lock"):  # concurrent runs take turns: none decodes twice
                self.refresh()  # another run may have built them while this one waited
                self._remove_leftovers()
                missing = [path for path in missing if not self._intact(self.key(path))]
                if missing:
                    log.info("decoding %d clips into %s with %d processes", len(missing), self.folder,
                             min(self.workers, len(missing)))  # fmt: skip
                    failures.update(self._build(missing))
        return failures

    def _intact(self, key: str) -> bool:
        """Whether ``key`` has an entry fit to serve, checked on its first use in this process. A damaged one is
        dropped with a warning naming its source file, so that :meth:`ensure` decodes it again."""
        entry = self.entries.get(key)
        if entry is None or entry in self.verified:
            return entry is not None
        problem = self._damage(entry)
        if problem is None:
            self.verified.add(entry)
            return True
        source, *_, version = key.rsplit("|", 3)
        log.warning("the cached audio of %s (%s version, in %s) is damaged (%s): decoding it again from that file",
                    source, version, self.folder / entry.shard, problem)  # fmt: skip
        self.damaged.add(entry)
        del self.entries[key]
        return False

    def _damage(self, entry: Entry) -> str | None:
        """What is wrong with an entry's stored samples, or None. The crc32 catches overwritten bytes; a NaN stored
        with a matching crc32 (written so, or crc recomputed) would still stop training, so finiteness is checked."""
        try:
            raw = self.read_bytes(entry)
        except OSError as error:
            return f"unreadable: {error.strerror or error}"
        if len(raw) != BYTES * entry.length:
            return "shorter than its index says"
        if zlib.crc32(raw) != entry.crc:
            return "crc32 mismatch"
        if not np.isfinite(np.frombuffer(raw, dtype=np.float32)).all():
            return "NaN or inf samples"
        return None

    def _remove_leftovers(self) -> None:
        """What no live writer owns, removed under the build lock: temporaries of killed writers, damaged shards."""
        remove_stale_temporaries(self.folder, ".*.tmp")
        for index in self.damaged_shards:
            index.unlink(missing_ok=True)
            index.with_suffix(".npy").unlink(missing_ok=True)

    def _build(self, paths: list[str]) -> dict[str, str]:
        failures: dict[str, str] = {}
        pending: list[tuple[str, np.ndarray]] = []
        size = 0
        work = partial(_render_or_reason, spec=self.spec, seed=self.seed)
        results = decode_all(work, paths, self.workers)
        for path in paths:
            result = results[path]
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
        return failures

    def _write_shard(self, signals: list[tuple[str, np.ndarray]]) -> None:
        """Write one shard of (entry key, signal) atomically: both files to temporary names, then renamed, index last.

        The data file's space is reserved before it is written, so a full disk is an error naming the file (a write
        into a sparse memory map would kill the process with SIGBUS instead); its temporaries are removed.
        """
        name = f"shard-{uuid.uuid4().hex}"
        samples = [np.ascontiguousarray(signal, dtype=np.float32) for _, signal in signals]
        total = sum(signal.size for signal in samples)
        rows, offset = [], 0
        for (key, _), signal in zip(signals, samples, strict=True):
            rows.append([key, offset, int(signal.size), zlib.crc32(signal)])
            offset += signal.size
        data_temporary, index_temporary = (self.folder / f".{name}.{suffix}.tmp" for suffix in ("npy", "json"))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (total,)})
        needed = header.tell() + BYTES * total
        try:
            with data_temporary.open("wb") as handle:
                if hasattr(os, "posix_fallocate"):  # not on macOS, where the writes below fail with ENOSPC instead
                    os.posix_fallocate(handle.fileno(), 0, needed)
                handle.write(header.getvalue())
                for signal in samples:
                    handle.write(signal.data)
            index_temporary.write_text(json.dumps({"n_samples": total, "entries": rows}))
        except OSError as error:
            data_temporary.unlink(missing_ok=True)
            index_temporary.unlink(missing_ok=True)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FinserError(
                    f"the decoded-audio cache is out of disk space: {data_temporary} needs "
                    f"{needed:,} bytes, {shutil.disk_usage(self.folder).free:,} are free. Free "
                    "space on that disk, or point paths.cache_dir (FINSER_CACHE) at a disk with room"
                ) from error
            raise
        os.replace(data_temporary, self.folder / f"{name}.npy")
        os.replace(index_temporary, self.folder / f"{name}.json")
        self._data_offsets[f"{name}.npy"] = header.tell()
        for key, start, length, crc in rows:
            entry = Entry(f"{name}.npy", start, length, crc)
            self.entries[key] = entry
            self.verified.add(entry)  # its crc32 is of these very samples, rendered from audio checked finite

    def _fd(self, shard: str) -> int:
        if shard not in self._files:
            self._files[shard] = os.open(self.folder / shard, os.O_RDONLY)
        return self._files[shard]

    def length(self, path: str) -> int:
        return self.entries[self.key(path)].length

    def read(self, path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of one entry, read from disk unchecked: :meth:`ensure` verified it before."""
        return self.read_entry(self.entries[self.key(path)], start, stop)

    def read_entry(self, entry: Entry, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.frombuffer(self.read_bytes(entry, start, stop), dtype=np.float32).copy()

    def read_bytes(self, entry: Entry, start: int = 0, stop: int | None = None) -> bytes:
        """Samples ``start:stop`` of one entry as raw float32 bytes: one ``pread``, no array."""
        stop = entry.length if stop is None else min(stop, entry.length)
        position = self._data_offsets[entry.shard] + BYTES * (entry.offset + start)
        return os.pread(self._fd(entry.shard), BYTES * (stop - start), position)

    def signal(self, path: str) -> np.ndarray:
        """One whole entry, verified (a damaged one decoded again) first; AudioError when the clip cannot be used."""
        failures = self.ensure([path])
        if failures:
            raise AudioError(failures[path])
        return self.read(path)

    def verify(self) -> list[str]:
        """Check every entry in the store, not only this run's clips; return the damaged keys. Each is dropped, and
        decoded again when this process knows its clip's path."""
        damaged = {key for key in list(self.entries) if not self._intact(key)}
        self.ensure([path for path, key in self.keys.items() if key in damaged])
        return sorted(damaged)

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}  # file descriptors do not travel to worker processes
