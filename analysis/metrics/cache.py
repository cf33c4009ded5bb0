"""The on-disk feature cache and the digests its keys are made of.

A cache entry is a feature file (see :mod:`analysis.metrics.featureset`) named
by the SHA-256 of a JSON key holding everything that decides the features:
the encoder's registry entry (architecture, creation arguments, feature
dimension), its preprocessing, the weights (file digest, or seed and library
versions for random weights), the image set's content digest and the shard.
A second run with the same settings reads the entry; changing any of them
misses.

The image-set digest hashes every file's relative path and bytes, so renaming,
adding, removing or editing an image changes it; touching a file does not.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.metrics.featureset import FeatureSet, load_feature_file, save_feature_file

_CHUNK = 1 << 20


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: str | Path, *, memo_dir: Path | None = None) -> str:
    """SHA-256 of a file (hex), remembered across runs when ``memo_dir`` is set.

    Weights files are large (a ViT-g is over 4 GB), so a digest is stored in
    ``memo_dir`` under the file's real path, size and modification time, and
    reused while those are unchanged.
    """
    path = Path(path).resolve()
    stat = path.stat()
    if memo_dir is None:
        return _sha256_file(path)

    stamp = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    memo = Path(memo_dir) / "digests" / hashlib.sha256(stamp).hexdigest()
    if memo.is_file():
        return memo.read_text().strip()
    value = _sha256_file(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(value)
    os.replace(tmp, memo)
    return value


def image_set_digest(root: str | Path, paths: Sequence[str]) -> str:
    """Digest of an image set: each relative path and its file's bytes, in order."""
    digest = hashlib.sha256()
    for rel in paths:
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(bytes.fromhex(_sha256_file(Path(root) / rel)))
    return digest.hexdigest()


def cache_key(fields: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``fields`` (sorted keys)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """Feature files in a folder, one per cache key.

    Parameters
    ----------
    root : str or Path
        The cache folder (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> FeatureSet | None:
        """The cached features for ``key``, or None (also for a broken file)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_feature_file(path)
        except ValueError:
            # an unreadable entry is a miss; it is rewritten after extraction
            return None

    def put(self, key: str, features: FeatureSet) -> Path:
        """Store features under ``key`` (atomically) and return the path."""
        return save_feature_file(self.path(key), features)
