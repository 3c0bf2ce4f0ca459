"""Download model repos from the Hugging Face Hub into the standard HF cache, resumably.

The files land exactly where ``huggingface_hub`` puts them (``<cache_dir>/models--org--name/``
with ``blobs/<etag>``, ``snapshots/<sha>/<path>`` links, ``refs/<revision>`` and the
``trees/<sha>.json`` listing huggingface_hub 2.4 keeps), so ``diffusers``' ``from_pretrained(...,
cache_dir=..., local_files_only=True)`` and every other HF tool read them as their own.

Why not ``snapshot_download``: in huggingface_hub 2.4 a download that stops (cancel, crash, lost
connection after its retries) deletes its partial file (each download writes a process-unique
``<etag>.<random>.incomplete`` and unlinks it on any failure), and even within one call it only
resumes at 10 MiB boundaries. Models are gigabytes, so the transfer is done here: metadata and the
per-file HEAD go through huggingface_hub (``HfApi.model_info``, ``get_hf_file_metadata``, its HTTP
session, offline mode, token lookup and error classes), the bytes are streamed to
``blobs/<etag>.incomplete``, which stays when the transfer stops and is continued with a
``Range`` request next time, then checked against the Hub's sha256 / git blob id.

Xet: the emulated or real Hub may advertise Xet storage (X-Xet-Hash); this module never uses it.
It GETs the ``Location`` the HEAD answered (the Hub's CDN / Xet bridge URL serves plain bytes with
``Range`` support), which is the same path huggingface_hub takes when ``hf_xet`` is missing.

``token`` follows huggingface_hub: ``None`` uses the saved login (``HF_TOKEN`` or the token file
``hf auth login`` writes), ``False`` sends none, a string is used as is. Tokens are never logged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

log = logging.getLogger("lumiku.hub_download")
DEFAULT_ENDPOINT = "https://huggingface.co"

AllowPatterns = str | Sequence[str] | Callable[[list[str]], Iterable[str]] | None
"""Which repo files to fetch: glob patterns as in ``snapshot_download(allow_patterns=...)``
(``fnmatchcase``; a pattern ending in ``/`` means the whole folder), or a function that gets every
file path of the repo and returns the ones to fetch (see :func:`diffusers_allow_patterns`);
``None`` means every file."""

MAX_WORKERS = 4  # files in flight at once
MAX_RETRIES = 5  # attempts per file without progress before giving up (the next call resumes)
RETRY_BASE_DELAY = 0.5  # seconds, doubled per attempt, at most RETRY_MAX_DELAY
RETRY_MAX_DELAY = 8.0
PROGRESS_EVERY = 0.1  # seconds between progress callbacks (plus one per finished file)
SPEED_WINDOW = 5.0  # seconds of transfer the speed is averaged over
_HASH_BLOCK = 8 * 1024 * 1024
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TREE_FORMAT_VERSION = 1  # huggingface_hub 2.4's trees/<sha>.json format
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass
class DownloadProgress:
    bytes_done: int
    bytes_total: int  # 0 if unknown yet
    bytes_per_second: float
    files_done: int
    files_total: int


class DownloadCancelled(Exception):
    """The cancel event was set (or the progress callback raised this). Partial files stay."""


class GatedModelError(Exception):
    """The model needs an access token, or the token has no access. The message says what to do."""


class DiskFullError(Exception):
    """Not enough free space, before starting or during the transfer."""

    def __init__(self, message: str, *, needed: int = 0, free: int = 0) -> None:
        super().__init__(message)
        self.needed = needed
        self.free = free


class DownloadFailed(Exception):
    """Any other failure, with a message meant for the user."""


class HubUnreachable(DownloadFailed):
    """The Hub could not be reached (network, DNS, timeout): a cached copy may do. Its
    message is whole (no errno): shown as it is."""


# ---------------------------------------------------------------------------------------------
# public API


def repo_size(
    repo_id: str,
    *,
    allow_patterns: AllowPatterns,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str = "main",
) -> int:
    """Total bytes of the files matching allow_patterns (from the Hub's metadata API)."""
    listing = _fetch_listing(repo_id, revision, _endpoint(endpoint), token)
    return sum(f.size for f in _select(listing.files, allow_patterns))


def download_snapshot(
    repo_id: str,
    *,
    cache_dir: str | os.PathLike[str],
    allow_patterns: AllowPatterns,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str = "main",
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    min_free_bytes: int = 0,
    max_workers: int = MAX_WORKERS,
    max_retries: int = MAX_RETRIES,
) -> Path:
    """Fetch the matching files of `repo_id` into the HF cache; return the snapshot folder.

    Files already in the cache are not fetched again; a partial file left by an earlier call is
    continued with a Range request. `on_progress` is called from the download threads (never two
    at once), at most every PROGRESS_EVERY seconds plus once per finished file, with byte counts
    that include what was already on disk. Setting `cancel` stops the transfer within a network
    read and raises DownloadCancelled; so does raising DownloadCancelled from `on_progress`.

    Before the first byte, the free space of `cache_dir` must cover the missing bytes plus
    `min_free_bytes`, or DiskFullError is raised. When the Hub cannot be reached (or
    HF_HUB_OFFLINE is set) and the files are cached, the cached snapshot is returned.
    """
    (snapshot,) = download_snapshots(
        [(repo_id, allow_patterns)],
        cache_dir=cache_dir,
        endpoint=endpoint,
        token=token,
        revision=revision,
        on_progress=on_progress,
        cancel=cancel,
        min_free_bytes=min_free_bytes,
        max_workers=max_workers,
        max_retries=max_retries,
    )
    return snapshot


@dataclass
class _Part:
    """One repo of a multi-repo download, listed and planned before any byte moves."""

    repo_id: str
    storage: Path
    snapshot: Path
    listing: _Listing | None  # None: the Hub is unreachable and the cached copy serves
    wanted: list[_File]
    plan: _Plan | None


def download_snapshots(
    parts: Sequence[tuple[str, AllowPatterns]],
    *,
    cache_dir: str | os.PathLike[str],
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str = "main",
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    min_free_bytes: int = 0,
    max_workers: int = MAX_WORKERS,
    max_retries: int = MAX_RETRIES,
) -> list[Path]:
    """download_snapshot for several (repo, allow patterns) parts as one download: every repo
    is listed first, so the progress has one total from the first callback on and the free
    space is checked once for all missing bytes; then the parts are fetched in order. Returns
    the snapshot folders, in the order of `parts`."""
    endpoint = _endpoint(endpoint)
    cancel = cancel if cancel is not None else threading.Event()
    cache = Path(cache_dir).expanduser().resolve()
    prepared: list[_Part] = []
    for repo_id, patterns in parts:
        if cancel.is_set():
            raise DownloadCancelled(f"Download of {repo_id} canceled.")
        prepared.append(_prepare(repo_id, patterns, cache, endpoint, token, revision))
    # the parts to fetch (not those the cache serves while the Hub is unreachable)
    planned = [
        (part, part.plan, part.listing)
        for part in prepared
        if part.plan is not None and part.listing is not None
    ]
    names = ", ".join(part.repo_id for part, _, _ in planned)
    try:
        for part, plan, listing in planned:
            _write_metadata(cache, part.storage, listing)
            for item in plan.link_only:
                _link(part.storage / "blobs" / item.etag, part.snapshot / item.path)
        missing = sum(plan.missing_bytes for _, plan, _ in planned)
        _check_disk_space(names, cache, missing, min_free_bytes)
    except OSError as exc:
        raise _disk_full_or(exc, names, cache) from exc
    if not planned:
        return [part.snapshot for part in prepared]
    wanted = [item for part, _, _ in planned for item in part.wanted]
    progress = _Progress(
        total=sum(f.size for f in wanted),
        done=sum(plan.done_bytes for _, plan, _ in planned),
        files_total=len(wanted),
        files_done=len(wanted) - sum(len(plan.fetch) for _, plan, _ in planned),
        callback=on_progress,
    )
    _unwrap(progress.emit, force=True)
    for part, plan, listing in planned:
        log.info(
            "Downloading %s@%s: %d of %d files, %d bytes missing",
            part.repo_id,
            listing.sha[:8],
            len(plan.fetch),
            len(part.wanted),
            plan.missing_bytes,
        )
        if plan.fetch:
            job = _Job(
                repo_id=part.repo_id,
                sha=listing.sha,
                cache=cache,
                storage=part.storage,
                snapshot=part.snapshot,
                endpoint=endpoint,
                token=token,
                progress=progress,
                cancel=cancel,
                stop=threading.Event(),
                max_retries=max_retries,
                counted=dict(plan.partial),
            )
            job.run(plan.fetch, max_workers)
        try:
            # Only now: refs/<revision> always names a complete snapshot, so an interrupted
            # update of a model leaves the previous, complete revision in use (is_cached,
            # diffusers).
            if revision != listing.sha and _read_ref(part.storage, revision) != listing.sha:
                _atomic_write(part.storage / "refs" / revision, listing.sha)
        except OSError as exc:
            raise _disk_full_or(exc, part.repo_id, cache) from exc
    _unwrap(progress.emit, force=True)
    return [part.snapshot for part in prepared]


def _prepare(
    repo_id: str,
    allow_patterns: AllowPatterns,
    cache: Path,
    endpoint: str | None,
    token: str | bool | None,
    revision: str,
) -> _Part:
    """List one repo and plan its transfer; offline or unreachable, its cached copy or an error."""
    from huggingface_hub import constants

    storage = cache / _folder_name(repo_id)
    if constants.is_offline_mode():
        if is_cached(repo_id, cache_dir=cache, allow_patterns=allow_patterns, revision=revision):
            return _Part(repo_id, storage, _cached_snapshot(storage, revision), None, [], None)
        raise DownloadFailed(
            f"Hugging Face offline mode is on (HF_HUB_OFFLINE) and {repo_id} is not fully "
            "downloaded. Turn offline mode off to download it."
        )
    try:
        listing = _fetch_listing(repo_id, revision, endpoint, token)
    except HubUnreachable as exc:
        if is_cached(repo_id, cache_dir=cache, allow_patterns=allow_patterns, revision=revision):
            log.warning("Hugging Face unreachable; using the cached %s", repo_id)
            return _Part(repo_id, storage, _cached_snapshot(storage, revision), None, [], None)
        raise HubUnreachable(str(exc)) from exc.__cause__
    wanted = _select(listing.files, allow_patterns)
    if not wanted:
        raise DownloadFailed(f"No file of {repo_id} matches {_describe(allow_patterns)}.")
    snapshot = storage / "snapshots" / listing.sha
    try:
        plan = _plan(storage, snapshot, wanted)
    except OSError as exc:
        raise _disk_full_or(exc, repo_id, cache) from exc
    return _Part(repo_id, storage, snapshot, listing, wanted, plan)


def is_cached(
    repo_id: str,
    *,
    cache_dir: str | os.PathLike[str],
    allow_patterns: AllowPatterns,
    revision: str = "main",
) -> bool:
    """True when the cached revision holds the files allow_patterns asks for, complete.

    Offline only. With the trees/<sha>.json listing (written by this module and by
    huggingface_hub 2.4), every matching file it names must be there at its size. Without one
    (releases before 2026 wrote none, so most existing caches have none) the snapshot counts as
    it is, as huggingface_hub and diffusers load it, unless it is provably partial: an unfinished
    blob (``*.incomplete``) that no listing accounts for, or, for a diffusers pipeline, a
    component of model_index.json without its files, a model without weights or a shard without
    its siblings."""
    storage = Path(cache_dir).expanduser() / _folder_name(repo_id)
    sha = revision if _COMMIT.match(revision) else _read_ref(storage, revision)
    if sha is None:
        return False
    snapshot = storage / "snapshots" / sha
    listing = _read_tree(storage, sha)
    if listing is not None:
        wanted = _select(listing, allow_patterns)
        for item in wanted:
            try:
                if (snapshot / item.path).stat().st_size != item.size:
                    return False
            except OSError:
                return False
    else:
        if _unlisted_partial_blobs(storage):
            return False
        present = cached_files(repo_id, cache_dir=cache_dir, revision=sha)
        wanted = _select({path: _File(path, 0) for path in present}, allow_patterns)
    return bool(wanted) and not _pipeline_gaps(snapshot, [item.path for item in wanted])


def cached_files(
    repo_id: str, *, cache_dir: str | os.PathLike[str], revision: str = "main"
) -> list[str]:
    """The files the cached revision's snapshot holds (repo paths, sorted; [] if none)."""
    storage = Path(cache_dir).expanduser() / _folder_name(repo_id)
    sha = revision if _COMMIT.match(revision) else _read_ref(storage, revision)
    if sha is None:
        return []
    snapshot = storage / "snapshots" / sha
    return sorted(
        path.relative_to(snapshot).as_posix()
        for path in snapshot.rglob("*")
        if path.is_file()  # a link to a blob that is not there is no file
    )


def has_variant(filenames: Iterable[str], variant: str) -> bool:
    """Whether any weights file is of `variant` (``*.fp16.safetensors`` for fp16)."""
    return any(name.endswith(_WEIGHTS) and _variant_of(name) == variant for name in filenames)


def _unlisted_partial_blobs(storage: Path) -> list[str]:
    """Unfinished blobs (huggingface_hub's ``<etag>[.<random>].incomplete``, ours
    ``<etag>.incomplete``) that no trees listing names: a transfer of this snapshot that stopped,
    not one of another revision that this module fetched and listed."""
    partial = [p.name.split(".")[0] for p in (storage / "blobs").glob("*.incomplete")]
    if not partial:
        return []
    listed: set[str] = set()
    for tree in (storage / "trees").glob("*.json"):
        files = _read_tree(storage, tree.stem)
        listed.update(item.etag for item in (files or {}).values())
    return [etag for etag in partial if etag not in listed]


def _pipeline_gaps(snapshot: Path, paths: list[str]) -> list[str]:
    """What a diffusers pipeline (a snapshot with model_index.json) lacks among `paths`: a
    component folder with no file, a model (``config.json``) with no weights, a missing shard."""
    if "model_index.json" not in paths:
        return []
    try:
        index = json.loads((snapshot / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["model_index.json"]
    if not isinstance(index, dict):
        return ["model_index.json"]
    components = [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
    ]
    gaps: list[str] = []
    for name in components:
        inside = [p.partition("/")[2] for p in paths if p.startswith(name + "/")]
        weights = [p for p in inside if p.endswith(_WEIGHTS)]
        if not inside:
            gaps.append(f"{name}/")
        elif "config.json" in inside and not weights:
            gaps.append(f"{name}/ weights")
        gaps += [f"{name}/{shard}" for shard in _missing_shards(weights)]
    return gaps


def _missing_shards(weights: list[str]) -> list[str]:
    shards: dict[tuple[str, str, int], set[int]] = {}
    for name in weights:
        stem, ext = os.path.splitext(name)
        match = _SHARD_NUMBER.search(stem)
        if match:
            key = (stem[: match.start()], ext, int(match["total"]))
            shards.setdefault(key, set()).add(int(match["index"]))
    return [
        f"{base}-{n:05d}-of-{total:05d}{ext}"
        for (base, ext, total), present in shards.items()
        for n in range(1, total + 1)
        if n not in present
    ]


def remove_from_cache(repo_id: str, *, cache_dir: str | os.PathLike[str]) -> int:
    """Delete the repo's cache folder (models--org--name); return bytes freed.

    Do not call it while a download of the same repo runs."""
    cache = Path(cache_dir).expanduser()
    folder = _folder_name(repo_id)
    storage = cache / folder
    freed = 0
    seen: set[tuple[int, int]] = set()
    if storage.is_dir():
        for root, _dirs, names in os.walk(storage):
            for name in names:
                try:
                    st = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in seen and not os.path.islink(os.path.join(root, name)):
                    seen.add(key)
                    freed += st.st_size
        _rmtree(storage)
    locks = cache / ".locks" / folder
    if locks.is_dir():
        _rmtree(locks)
    log.info("Removed %s from %s: %d bytes freed", repo_id, cache, freed)
    return freed


# Weight files, the runtimes they are for, and the small files a pipeline reads.
_WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".onnx_data",
            ".pb", ".h5", ".gguf")  # fmt: skip
_SMALL = (".json", ".txt", ".model", ".tiktoken")
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_SHARD_NUMBER = re.compile(r"-(?P<index>\d{5})-of-(?P<total>\d{5})$")


def diffusers_allow_patterns(filenames: Iterable[str], variant: str | None = None) -> list[str]:
    """The files of a diffusers repo a pipeline needs, from the repo's file list.

    - every config / tokenizer / scheduler file (``*.json``, ``*.txt``, ``*.model``);
    - per component folder, one copy of the weights: the `variant` (e.g. ``fp16``) safetensors
      when the folder has them, else the plain safetensors; ``.bin`` only where a folder has no
      safetensors; never ``.ckpt``/``.pt``/ONNX/Flax/OpenVINO files;
    - no single-file checkpoints at the repo root when ``model_index.json`` exists (diffusers
      reads the component folders); a repo without it (a LoRA) keeps its root weights.

    Use it as ``allow_patterns=functools.partial(diffusers_allow_patterns, variant="fp16")``: the
    functions of this module then call it with the repo's (or the cached) file list."""
    names = sorted(set(filenames))
    pipeline = "model_index.json" in names
    chosen: list[str] = [n for n in names if n.endswith(_SMALL)]
    by_folder: dict[str, list[str]] = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        if base.endswith(_WEIGHTS) and not (pipeline and not folder):
            by_folder.setdefault(folder, []).append(name)
    for files in by_folder.values():
        for ext in (".safetensors", ".bin"):
            candidates = [
                f for f in files if f.endswith(ext) and not re.search(r"onnx|openvino|flax", f)
            ]
            if candidates:
                chosen += _pick_variant(candidates, ext, variant)
                break
    return sorted(set(chosen))


def _pick_variant(files: list[str], ext: str, variant: str | None) -> list[str]:
    if variant:
        preferred = [f for f in files if _variant_of(f) == variant]
        if preferred:
            return preferred
    return [f for f in files if _variant_of(f) is None]


def _variant_of(name: str) -> str | None:
    """``fp16`` for ``diffusion_pytorch_model.fp16.safetensors`` (or a shard of it), else None."""
    base = name.rpartition("/")[2]
    stem = _SHARD.sub("", base[: -len(ext)] if (ext := _weights_suffix(base)) else base)
    return stem.rpartition(".")[2] if "." in stem else None


def _weights_suffix(name: str) -> str:
    return next((ext for ext in _WEIGHTS if name.endswith(ext)), "")


# ---------------------------------------------------------------------------------------------
# listing and selection


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    blob_id: str | None = None  # git blob id (of the LFS pointer for LFS files)
    sha256: str | None = None  # LFS files

    @property
    def etag(self) -> str:
        """What the Hub's HEAD answers as (X-Linked-)ETag, i.e. the blob's name in the cache."""
        return self.sha256 or self.blob_id or ""


@dataclass(frozen=True)
class _Listing:
    sha: str
    files: dict[str, _File]


def _fetch_listing(
    repo_id: str, revision: str, endpoint: str | None, token: str | bool | None
) -> _Listing:
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, library_name="lumiku-local")
    for attempt in range(3):
        try:
            info = api.model_info(
                repo_id,
                revision=revision,
                files_metadata=True,
                token=token,
                timeout=constants.HF_HUB_ETAG_TIMEOUT,
            )
            break
        except HfHubHTTPError as exc:  # rate limited or a Hub hiccup: ask again, briefly
            status = exc.response.status_code if exc.response is not None else None
            if attempt == 2 or status not in _RETRY_STATUS:
                raise _translate(exc, repo_id, endpoint, revision) from exc
            time.sleep(RETRY_BASE_DELAY * 2**attempt)
        except Exception as exc:
            raise _translate(exc, repo_id, endpoint, revision) from exc
    if not info.sha:
        raise DownloadFailed(f"The Hub did not say which commit {repo_id}@{revision} is.")
    files: dict[str, _File] = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        if lfs is None and not sibling.blob_id:
            raise DownloadFailed(
                f"Hugging Face did not list the file ids of {repo_id}; cannot download it safely."
            )
        files[sibling.rfilename] = _File(
            path=sibling.rfilename,
            size=int(lfs.size if lfs is not None else sibling.size or 0),
            blob_id=sibling.blob_id,
            sha256=lfs.sha256 if lfs is not None else None,
        )
    return _Listing(info.sha, files)


def _select(files: dict[str, _File], allow_patterns: AllowPatterns) -> list[_File]:
    if allow_patterns is None:
        return [files[p] for p in sorted(files)]
    if callable(allow_patterns):
        chosen = set(allow_patterns(sorted(files)))
        return [files[p] for p in sorted(chosen) if p in files]
    patterns = [allow_patterns] if isinstance(allow_patterns, str) else list(allow_patterns)
    patterns = [p.replace("\\", "/") for p in patterns]
    patterns = [p + "*" if p.endswith("/") else p for p in patterns]
    return [files[p] for p in sorted(files) if any(fnmatchcase(p, pat) for pat in patterns)]


def _describe(allow_patterns: AllowPatterns) -> str:
    if callable(allow_patterns):
        return f"the file filter {getattr(allow_patterns, '__name__', repr(allow_patterns))}"
    return f"the patterns {allow_patterns!r}"


# ---------------------------------------------------------------------------------------------
# the cache layout


def _endpoint(endpoint: str | None) -> str | None:
    return endpoint.rstrip("/") if endpoint else None


def _folder_name(repo_id: str) -> str:
    return "--".join(["models", *repo_id.split("/")])


def _read_ref(storage: Path, revision: str) -> str | None:
    try:
        sha = (storage / "refs" / revision).read_text().strip()
    except (OSError, ValueError):
        return None
    return sha if _COMMIT.match(sha) else None


def _cached_snapshot(storage: Path, revision: str) -> Path:
    sha = revision if _COMMIT.match(revision) else _read_ref(storage, revision)
    assert sha is not None
    return storage / "snapshots" / sha


def _read_tree(storage: Path, sha: str) -> dict[str, _File] | None:
    try:
        data = json.loads((storage / "trees" / f"{sha}.json").read_text(encoding="utf-8"))
        if data.get("format_version") != _TREE_FORMAT_VERSION:
            return None
        return {
            path: _File(
                path=path,
                size=int(info.get("lfs_size") or info["size"]),
                blob_id=info.get("blob_id"),
                sha256=info.get("lfs_sha256"),
            )
            for path, info in data["files"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_metadata(cache: Path, storage: Path, listing: _Listing) -> None:
    """trees/<sha>.json (the whole repo listing, as huggingface_hub 2.4 writes it) and
    CACHEDIR.TAG."""
    cache.mkdir(parents=True, exist_ok=True)
    tag = cache / "CACHEDIR.TAG"
    if not tag.exists():
        _atomic_write(tag, _CACHEDIR_TAG)
    if _read_tree(storage, listing.sha) is None:
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(listing.files):
            item = listing.files[path]
            entry: dict[str, Any] = {"size": item.size, "blob_id": item.blob_id or ""}
            if item.sha256:
                entry.update(lfs_sha256=item.sha256, lfs_size=item.size)
            files[path] = entry
        payload = {"format_version": _TREE_FORMAT_VERSION, "files": files}
        _atomic_write(storage / "trees" / f"{listing.sha}.json", json.dumps(payload, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<sha>/<path> -> ../../blobs/<etag>, relative like huggingface_hub's; a hard
    link, then a copy, where symlinks are not allowed (Windows without developer mode)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(pointer):
        if pointer.exists() and os.path.samefile(pointer, blob):
            return
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        return
    except FileExistsError:
        if pointer.exists() and os.path.samefile(pointer, blob):
            return
        raise
    except (OSError, NotImplementedError):
        pass
    try:
        os.link(blob, pointer)
    except OSError:
        shutil.copyfile(blob, pointer)


@dataclass
class _Plan:
    fetch: list[_File]
    link_only: list[_File]
    partial: dict[str, int]  # bytes already in blobs/<etag>.incomplete, per file to fetch
    done_bytes: int  # complete files plus partial files
    missing_bytes: int


def _plan(storage: Path, snapshot: Path, wanted: list[_File]) -> _Plan:
    fetch: list[_File] = []
    link_only: list[_File] = []
    partials: dict[str, int] = {}
    done = missing = 0
    blobs = storage / "blobs"
    for item in wanted:
        pointer = snapshot / item.path
        try:
            if pointer.stat().st_size == item.size:
                done += item.size
                continue
            pointer.unlink()  # wrong size: a damaged copy; fetch it again
        except FileNotFoundError:
            pass
        blob = blobs / item.etag
        if blob.is_file() and blob.stat().st_size == item.size:
            link_only.append(item)
            done += item.size
            continue
        partial = _partial_size(blobs / f"{item.etag}.incomplete", item.size)
        partials[item.path] = partial
        done += partial
        missing += item.size - partial
        fetch.append(item)
    fetch.sort(key=lambda f: f.size, reverse=True)  # big files first keeps every worker busy
    return _Plan(fetch, link_only, partials, done, missing)


def _partial_size(path: Path, size: int) -> int:
    try:
        have = path.stat().st_size
    except OSError:
        return 0
    return have if have <= size else 0


def _check_disk_space(repo_id: str, cache: Path, missing: int, keep_free: int) -> None:
    if missing <= 0:
        return
    free = shutil.disk_usage(_existing(cache)).free
    if free < missing + keep_free:
        raise DiskFullError(
            f"Not enough disk space for {repo_id}: it needs {_human(missing)} more"
            + (f" (and {_human(keep_free)} kept free)" if keep_free else "")
            + f", but only {_human(free)} is free in {cache}. Free up "
            f"{_human(missing + keep_free - free)} or choose another model folder.",
            needed=missing + keep_free,
            free=free,
        )


def _existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _rmtree(path: Path) -> None:
    def retry_writable(func: Callable[..., Any], target: str, *_: Any) -> None:
        os.chmod(target, 0o700)  # read-only files (Windows) cannot be deleted as they are
        func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)
    else:  # onerror is deprecated from 3.12 on
        shutil.rmtree(path, onerror=retry_writable)


# ---------------------------------------------------------------------------------------------
# progress


class _Progress:
    """Byte and file counts shared by the download threads; calls back one at a time."""

    def __init__(
        self,
        *,
        total: int,
        done: int,
        files_total: int,
        files_done: int,
        callback: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self.total = total
        self.done = done
        self.files_total = files_total
        self.files_done = files_done
        self.callback = callback
        self.transferred = 0  # received in this call, for the speed
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self._emitted_at = 0.0
        self._lock = threading.Lock()

    def add(self, n: int, *, transferred: bool) -> None:
        with self._lock:
            self.done += n
            if transferred:
                self.transferred += n
            self._emit_locked(force=False)

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
            self._emit_locked(force=True)

    def emit(self, force: bool) -> None:
        with self._lock:
            self._emit_locked(force)

    def _emit_locked(self, force: bool) -> None:
        now = time.monotonic()
        if now - self._samples[-1][0] >= PROGRESS_EVERY:
            self._samples.append((now, self.transferred))
            while len(self._samples) > 2 and now - self._samples[1][0] >= SPEED_WINDOW:
                self._samples.popleft()
        if self.callback is None or not (force or now - self._emitted_at >= PROGRESS_EVERY):
            return
        self._emitted_at = now
        since, base = self._samples[0]
        elapsed = now - since
        speed = (self.transferred - base) / elapsed if elapsed >= 0.05 else 0.0
        progress = DownloadProgress(
            bytes_done=min(self.done, self.total) if self.total else self.done,
            bytes_total=self.total,
            bytes_per_second=speed,
            files_done=self.files_done,
            files_total=self.files_total,
        )
        try:
            self.callback(progress)
        except DownloadCancelled:
            raise
        except BaseException as exc:
            raise _CallbackError from exc


class _CallbackError(Exception):
    """on_progress raised: the download stops and the caller gets that exception as it was."""


def _unwrap(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except _CallbackError as exc:
        assert exc.__cause__ is not None
        raise exc.__cause__ from None


# ---------------------------------------------------------------------------------------------
# the transfer


class _Stopped(Exception):
    """Another file failed or the caller was interrupted: this thread stops quietly."""


class _Retry(Exception):
    """A transient failure: try this file again (after a pause)."""


@dataclass
class _Job:
    repo_id: str
    sha: str
    cache: Path
    storage: Path
    snapshot: Path
    endpoint: str | None
    token: str | bool | None
    progress: _Progress
    cancel: threading.Event
    stop: threading.Event
    max_retries: int
    counted: dict[str, int]  # per file: the bytes on disk that bytes_done includes

    def run(self, files: list[_File], max_workers: int) -> None:
        first_error: list[BaseException] = []
        lock = threading.Lock()

        def work(item: _File) -> None:
            try:
                self._fetch(item)
            except _Stopped:
                raise
            except BaseException as exc:
                with lock:
                    first_error.append(exc)
                self.stop.set()
                raise

        pool = ThreadPoolExecutor(
            max_workers=max(1, min(max_workers, len(files))), thread_name_prefix="hf-download"
        )
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(work, item) for item in files]
            while True:  # in slices: Ctrl+C reaches a waiting main thread (Windows) this way
                done, pending = wait(futures, timeout=0.25, return_when=FIRST_EXCEPTION)
                if not pending or any(f.exception() is not None for f in done):
                    break
        finally:
            # After a failure, or a KeyboardInterrupt in the caller's thread: stop the others.
            self.stop.set()
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
        if not first_error:
            return  # every file is in place, even if cancel came after the last byte
        if self.cancel.is_set() or any(isinstance(e, DownloadCancelled) for e in first_error):
            raise DownloadCancelled(f"Download of {self.repo_id} canceled.")
        if first_error:
            error = first_error[0]
            if isinstance(error, _CallbackError) and error.__cause__ is not None:
                raise error.__cause__
            raise error

    def _check(self) -> None:
        if self.cancel.is_set():
            raise DownloadCancelled(f"Download of {self.repo_id} canceled.")
        if self.stop.is_set():
            raise _Stopped

    def _fetch(self, item: _File) -> None:
        from filelock import FileLock, Timeout

        self._check()
        lock_path = self.cache / ".locks" / _folder_name(self.repo_id) / f"{item.etag}.lock"
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(lock_path), mode=0o664)
            while True:  # another process may be fetching this blob: wait, but stay cancellable
                try:
                    lock.acquire(timeout=0.2)
                    break
                except Timeout:
                    self._check()
            try:
                blob = self.storage / "blobs" / item.etag
                if not (blob.is_file() and blob.stat().st_size == item.size):
                    self._transfer(item)
                _link(blob, self.snapshot / item.path)
            finally:
                lock.release()
        except OSError as exc:
            raise _disk_full_or(exc, self.repo_id, self.cache, item.size) from exc
        self._count(item, item.size, transferred=False)
        self.progress.file_done()

    def _count(self, item: _File, on_disk: int, *, transferred: bool) -> None:
        """Record that `on_disk` bytes of `item` are on disk now, and tell the progress."""
        delta = on_disk - self.counted.get(item.path, 0)
        self.counted[item.path] = on_disk
        if delta:
            self.progress.add(delta, transferred=transferred and delta > 0)

    def _transfer(self, item: _File) -> None:
        """Fetch one file into blobs/<etag> through blobs/<etag>.incomplete, with retries."""
        failures = 0
        restarted = False
        while True:
            self._check()
            try:
                self._attempt(item)
                return
            except _Corrupt:
                if restarted:
                    raise DownloadFailed(
                        f"{item.path} of {self.repo_id} arrived damaged twice (checksum "
                        "mismatch). Try again later."
                    ) from None
                restarted = True  # maybe a damaged partial file from an earlier run: start over
            except _Retry as exc:
                made_progress, cause = exc.args
                failures = 0 if made_progress else failures + 1
                if failures > self.max_retries:
                    raise DownloadFailed(
                        f"The connection to Hugging Face kept failing while downloading "
                        f"{item.path} of {self.repo_id} ({cause}). Check your internet "
                        "connection; the next try continues where this one stopped."
                    ) from exc.__cause__
                delay = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** max(0, failures - 1))
                log.warning(
                    "%s of %s: %s; retrying in %.1fs", item.path, self.repo_id, cause, delay
                )
                if self.cancel.wait(delay):
                    self._check()

    def _attempt(self, item: _File) -> None:
        import httpx2
        from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import FileMetadataError, HfHubHTTPError, OfflineModeIsEnabled
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(self.repo_id, item.path, revision=self.sha, endpoint=self.endpoint)
        blobs = self.storage / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        incomplete = blobs / f"{item.etag}.incomplete"
        have = _partial_size(incomplete, item.size)
        if have == 0:
            incomplete.unlink(missing_ok=True)  # also a partial file longer than the file
        self._count(item, have, transferred=False)
        received = 0
        try:
            meta = get_hf_file_metadata(
                url,
                token=self.token,
                timeout=constants.HF_HUB_ETAG_TIMEOUT,
                endpoint=self.endpoint,
                library_name="lumiku-local",
            )
            if meta.etag and meta.etag != item.etag:
                log.debug("%s: HEAD etag %s, listing %s", item.path, meta.etag, item.etag)
            location = urljoin(url, meta.location or url)
            headers = build_hf_headers(token=self.token, library_name="lumiku-local")
            headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself
            if _origin(location) != _origin(url):
                headers.pop("authorization", None)  # a signed CDN URL: the token stays home
            verifier = _Verifier.for_file(item)
            if have:
                verifier.feed_file(incomplete, have, self._check)
            if have < item.size or item.size == 0:
                if have:
                    headers["Range"] = f"bytes={have}-"
                with get_session().stream(
                    "GET",
                    location,
                    headers=headers,
                    timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                    follow_redirects=True,
                ) as response:
                    if response.status_code == 416 and have:
                        response.read()
                        self._discard(item, incomplete)
                        raise _Retry(True, "the server refused to continue the partial file")
                    if response.status_code >= 400:
                        response.read()
                        hf_raise_for_status(response)
                    if have and response.status_code != 206:
                        self._discard(item, incomplete)  # the server sent the whole file
                        have = 0
                        verifier = _Verifier.for_file(item)
                    elif have and not _range_starts_at(response, have):
                        self._discard(item, incomplete)
                        raise _Retry(True, "the server answered another byte range")
                    with open(incomplete, "ab" if have else "wb", buffering=0) as out:
                        for chunk in response.iter_bytes():
                            self._check()
                            _write_chunk(out, chunk)
                            received += len(chunk)
                            verifier.update(chunk)
                            self._count(item, have + received, transferred=True)
            total = have + received
            if total != item.size:
                raise _Retry(received > 0, f"got {total} of {item.size} bytes")
            if not verifier.matches():
                self._discard(item, incomplete)
                raise _Corrupt
            os.replace(incomplete, blobs / item.etag)
        except (
            DownloadCancelled,
            _Stopped,
            _Retry,
            _Corrupt,
            _CallbackError,
            DownloadFailed,
            GatedModelError,
        ):
            raise
        except httpx2.TransportError as exc:  # connection lost, timeout, refused, ...
            raise _Retry(received > 0, _transport_words(exc)) from exc
        except HfHubHTTPError as exc:  # before OSError: huggingface_hub's errors are OSErrors
            status = exc.response.status_code if exc.response is not None else None
            if status in _RETRY_STATUS:
                raise _Retry(received > 0, f"HTTP {status}") from exc
            raise _translate(exc, self.repo_id, self.endpoint, self.sha) from exc
        except (OfflineModeIsEnabled, FileMetadataError) as exc:
            raise _translate(exc, self.repo_id, self.endpoint, self.sha) from exc
        except OSError:
            raise  # the local disk: _fetch tells a full disk from other failures
        except Exception as exc:
            raise _translate(exc, self.repo_id, self.endpoint, self.sha) from exc

    def _discard(self, item: _File, incomplete: Path) -> None:
        incomplete.unlink(missing_ok=True)
        self._count(item, 0, transferred=False)


def _write_chunk(out: Any, chunk: bytes) -> None:
    """Write all of `chunk` to the unbuffered file (a raw write may be short)."""
    view = memoryview(chunk)
    while view:
        written = out.write(view)
        view = view[written:]


class _Corrupt(Exception):
    """The finished file does not match the Hub's checksum."""


class _Verifier:
    """sha256 for LFS files, the git blob id for the others: both are in the Hub's listing."""

    def __init__(self, digest: Any, expected: str) -> None:
        self.digest = digest
        self.expected = expected

    @classmethod
    def for_file(cls, item: _File) -> _Verifier:
        if item.sha256:
            return cls(hashlib.sha256(), item.sha256)
        return cls(hashlib.sha1(b"blob %d\0" % item.size), item.blob_id or "")

    def update(self, data: bytes) -> None:
        self.digest.update(data)

    def feed_file(self, path: Path, length: int, check: Callable[[], None]) -> None:
        with open(path, "rb") as source:
            left = length
            while left > 0:
                check()
                block = source.read(min(_HASH_BLOCK, left))
                if not block:
                    break
                self.digest.update(block)
                left -= len(block)

    def matches(self) -> bool:
        return self.digest.hexdigest() == self.expected


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _range_starts_at(response: Any, offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return match is not None and int(match.group(1)) == offset


def unreachable_message(endpoint: str | None = None) -> str:
    """What a person reads when Hugging Face cannot be reached: what to do, no errno."""
    where = "" if not endpoint or endpoint.rstrip("/") == DEFAULT_ENDPOINT else f" at {endpoint}"
    return (
        f"Lumiku cannot reach Hugging Face{where}: check your internet connection, then try "
        "again. Downloads continue where they stopped."
    )


def _transport_words(exc: BaseException) -> str:
    """A network failure in words (the raw error, an errno, goes to the log)."""
    import httpx2

    log.warning("connection to Hugging Face: %s", _short(exc))
    if isinstance(exc, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx2.ConnectError):
        return "Hugging Face could not be reached"
    return "the connection broke off"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


# ---------------------------------------------------------------------------------------------
# errors


def _disk_full_or(exc: OSError, repo_id: str, cache: Path, needed: int = 0) -> Exception:
    if exc.errno not in _DISK_FULL:
        return DownloadFailed(f"Could not write {repo_id} to {cache}: {exc.strerror or exc}.")
    try:
        free = shutil.disk_usage(_existing(cache)).free
    except OSError:
        free = 0
    return DiskFullError(
        f"The disk filled up while downloading {repo_id} into {cache} ({_human(free)} free). "
        "Free up some space and start the download again: it continues where it stopped.",
        needed=needed,
        free=free,
    )


def _translate(exc: BaseException, repo_id: str, endpoint: str | None, revision: str) -> Exception:
    """A huggingface_hub / network error as one of this module's errors, worded for people."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    base = (endpoint or constants.ENDPOINT).rstrip("/")
    page = f"{base}/{repo_id}"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    sent_token = False
    if response is not None:
        try:
            sent_token = "authorization" in response.request.headers
        except (RuntimeError, AttributeError):
            sent_token = False
    if isinstance(exc, OfflineModeIsEnabled):
        return DownloadFailed(
            f"Hugging Face offline mode is on (HF_HUB_OFFLINE), so {repo_id} cannot be "
            "downloaded. Turn offline mode off to download it."
        )
    if isinstance(exc, RepositoryNotFoundError) and not isinstance(exc, GatedRepoError):
        return DownloadFailed(
            f"{repo_id} was not found on {base}. Check the model name; if it is a private "
            "model, save an access token of an account that can see it in Lumiku's settings."
        )
    if isinstance(exc, GatedRepoError) or (
        isinstance(exc, HfHubHTTPError) and status in (401, 403)
    ):
        if status == 403:
            return GatedModelError(
                f"Your Hugging Face account has no access to {repo_id} yet. Open {page}, log in "
                "with the account the access token belongs to and accept the model's conditions "
                "(some authors approve requests by hand, which can take a while), then try "
                "again. If you already have access, check that the token can read public gated "
                "repositories (fine-grained tokens need that permission)."
            )
        if sent_token:
            return GatedModelError(
                f"Hugging Face did not accept the access token for {repo_id}: it may be "
                "expired, revoked or mistyped. Create a new 'Read' token at "
                f"{base}/settings/tokens and save it in Lumiku's settings (or set HF_TOKEN)."
            )
        return GatedModelError(
            f"{repo_id} is a gated model: Hugging Face only lets you download it after you "
            f"accept its conditions and sign in with an access token. Open {page}, log in and "
            f"accept the conditions, create a 'Read' token at {base}/settings/tokens, then save "
            "it in Lumiku's settings (or set HF_TOKEN) and start the download again."
        )
    if isinstance(exc, RevisionNotFoundError):
        return DownloadFailed(f"{repo_id} has no revision {revision!r} on Hugging Face.")
    if isinstance(exc, RemoteEntryNotFoundError):
        return DownloadFailed(f"A file listed for {repo_id} is missing on Hugging Face: {exc}")
    if isinstance(exc, httpx2.TransportError):
        log.warning("Hugging Face at %s unreachable: %s", base, _short(exc))
        return HubUnreachable(unreachable_message(base))
    if isinstance(exc, HfHubHTTPError):
        return DownloadFailed(
            f"Hugging Face answered HTTP {status} for {repo_id}. Try again in a few minutes."
        )
    if isinstance(exc, DownloadFailed | GatedModelError | DiskFullError | DownloadCancelled):
        return exc
    return DownloadFailed(f"Downloading {repo_id} failed: {_short(exc)}")
