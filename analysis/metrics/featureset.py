"""Feature sets in memory and on disk (``.npz`` feature files), and shard merging.

A feature file is a NumPy ``.npz`` archive with:

``features``
    float32, images x feature dimensions.
``logits`` (optional)
    float32, images x classes (encoders with a classifier, for ``IS``).
``paths``
    str, each image's path relative to its folder, in row order.
``labels`` (optional)
    str, each image's class ('' when unknown), for per-class Vendi scores.
``meta``
    a JSON string: ``format`` (version), ``encoder``, ``weights`` (the table
    label), ``weights_key``, ``preprocessing``, ``image_set`` (digest of the
    whole folder), ``n_images`` (of the whole folder), ``shard`` ([i, n]),
    ``source`` (the folder).

Files holding only a ``features`` array (or a single unnamed array), such as
those of other tools, are read too; their metadata is then unknown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT_VERSION = 1


@dataclass
class FeatureSet:
    """Features of one image set (or one shard of it) from one encoder."""

    features: NDArray[np.float32]
    paths: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    logits: NDArray[np.float32] | None = None
    labels: list[str] | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def encoder(self) -> str | None:
        return self.meta.get("encoder")

    @property
    def shard(self) -> tuple[int, int]:
        i, n = self.meta.get("shard", (0, 1))
        return int(i), int(n)


def save_feature_file(path: str | Path, features: FeatureSet) -> Path:
    """Write a feature file atomically (a partly written file never appears).

    Returns
    -------
    Path
        The path written (``.npz`` appended if missing).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "features": np.asarray(features.features, dtype=np.float32),
        "paths": np.asarray(features.paths, dtype=str),
        "meta": np.asarray(json.dumps({"format": FORMAT_VERSION, **features.meta})),
    }
    if features.logits is not None:
        arrays["logits"] = np.asarray(features.logits, dtype=np.float32)
    if features.labels is not None:
        arrays["labels"] = np.asarray(features.labels, dtype=str)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
    return path


def load_feature_file(path: str | Path) -> FeatureSet:
    """Read a feature file (see the module docstring).

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, or has no features.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"feature file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if "features" in names:
                key = "features"
            elif len(names) == 1:
                key = names[0]
            else:
                raise ValueError(
                    f"feature file {path} has no 'features' array (has {names})"
                )
            features = np.asarray(data[key], dtype=np.float32)
            meta = json.loads(str(data["meta"])) if "meta" in names else {}
            paths = [str(p) for p in data["paths"]] if "paths" in names else []
            logits = np.asarray(data["logits"]) if "logits" in names else None
            labels = [str(v) for v in data["labels"]] if "labels" in names else None
    except (OSError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith("feature file"):
            raise
        raise ValueError(f"cannot read feature file {path}: {error}") from error

    if features.ndim != 2:
        raise ValueError(
            f"feature file {path}: features must be 2-D (images x dimensions); "
            f"got shape {features.shape}"
        )
    if not paths:
        paths = [f"{i}" for i in range(features.shape[0])]
    return FeatureSet(features, paths, meta, logits, labels)


def merge_shards(shards: Sequence[FeatureSet]) -> FeatureSet:
    """Join the shards of one image set into the features of the whole set.

    Parameters
    ----------
    shards : sequence of FeatureSet
        Every shard ``0 .. n-1`` of one folder and encoder, in any order.

    Returns
    -------
    FeatureSet
        Rows in the order of an unsharded run; ``shard`` is ``[0, 1]``.

    Raises
    ------
    ValueError
        If the shards disagree on the image set, encoder, weights or
        preprocessing, or if a shard is missing or repeated.
    """
    if not shards:
        raise ValueError("no shards to merge")
    first = shards[0].meta
    same = ("image_set", "encoder", "weights_key", "preprocessing", "n_images")
    for shard in shards[1:]:
        for key in same:
            if shard.meta.get(key) != first.get(key):
                raise ValueError(
                    f"shards disagree on {key}: {first.get(key)!r} vs "
                    f"{shard.meta.get(key)!r}"
                )
    count = shards[0].shard[1]
    found = sorted(s.shard[0] for s in shards)
    if any(s.shard[1] != count for s in shards) or found != list(range(count)):
        raise ValueError(
            f"need each of shards 0..{count - 1} of {count} exactly once; got {found}"
        )

    ordered = sorted(shards, key=lambda s: s.shard[0])
    logits = None
    if all(s.logits is not None for s in ordered):
        logits = np.concatenate([s.logits for s in ordered])
    labels = None
    if all(s.labels is not None for s in ordered):
        labels = [v for s in ordered for v in (s.labels or [])]
    merged = FeatureSet(
        np.concatenate([s.features for s in ordered]),
        [p for s in ordered for p in s.paths],
        {**first, "shard": [0, 1]},
        logits,
        labels,
    )
    if "n_images" in first and len(merged) != first["n_images"]:
        raise ValueError(
            f"merged shards hold {len(merged)} images; the set has {first['n_images']}"
        )
    return merged
