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
import zipfile
import zlib
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

    Nothing in the file is unpickled (``allow_pickle=False``), and every array
    is checked before use, so a corrupt or foreign file gives a message, not
    a traceback.

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive (or a damaged one),
        holds no features, or has an array of the wrong type or shape. Every
        message starts with ``feature file`` or ``cannot read feature file``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"feature file {path} does not exist")
    try:
        # our own handle: numpy leaves its file open when the archive is bad
        with open(path, "rb") as handle:
            _check_magic(handle.read(len(_NPY_MAGIC)))
            handle.seek(0)
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {name: data[name] for name in data.files}
    # a damaged archive raises from zipfile, zlib or the .npy header parser
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = str(error)
        if isinstance(error, zipfile.BadZipFile):
            reason = f"not an .npz archive, or a truncated one ({reason})"
        elif "pickle" in reason:
            # an object array inside the archive; numpy's text suggests loading
            # it anyway, which runs its code
            reason = _PICKLED
        raise ValueError(f"cannot read feature file {path}: {reason}") from None
    return _feature_set(arrays, path)


# What np.load looks for; anything else it hands to its pickle reader, so a text
# file would be reported as "pickled data".
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # the second: an empty archive
_NPY_MAGIC = b"\x93NUMPY"
# Pickle protocols 2 and later start with the PROTO opcode.
_PICKLE_PROTO = b"\x80"
_PICKLED = "it holds pickled Python objects, which are never loaded"


def _check_magic(head: bytes) -> None:
    """Refuse a file that is neither a zip archive nor a ``.npy`` array."""
    if head.startswith(_ZIP_MAGIC) or head == _NPY_MAGIC:
        return
    if head.startswith(_PICKLE_PROTO):
        raise ValueError(_PICKLED)
    what = "an empty file, not" if not head else "not"
    raise ValueError(f"{what} a feature file (.npz, a zip archive of arrays)")


def _feature_set(arrays: dict[str, np.ndarray], path: Path) -> FeatureSet:
    """Check the arrays of a feature file and make them a FeatureSet."""
    names = sorted(arrays)
    if "features" in arrays:
        key = "features"
    elif len(names) == 1:
        key = names[0]
    else:
        raise ValueError(f"feature file {path} has no 'features' array (has {names})")
    features = _numbers(arrays[key], "features", path)
    rows = features.shape[0]
    logits = None
    if "logits" in arrays and key != "logits":
        logits = _numbers(arrays["logits"], "logits", path)
        if logits.shape[0] != rows:
            raise ValueError(
                f"feature file {path}: logits has {logits.shape[0]} rows; features "
                f"has {rows}"
            )
    paths = _strings(arrays, "paths", rows, path)
    labels = _strings(arrays, "labels", rows, path)
    meta = _meta(arrays.get("meta"), path)
    if paths is None:
        paths = [str(i) for i in range(rows)]
    return FeatureSet(features, paths, meta, logits, labels)


def _numbers(array: np.ndarray, name: str, path: Path) -> NDArray[np.float32]:
    if array.dtype.kind not in "fiu" or array.ndim != 2:
        raise ValueError(
            f"feature file {path}: {name} must be a 2-D array of numbers (images x "
            f"dimensions); got a {array.ndim}-D array of {array.dtype}"
        )
    return np.asarray(array, dtype=np.float32)


def _strings(
    arrays: dict[str, np.ndarray], name: str, rows: int, path: Path
) -> list[str] | None:
    """One string per image, or None when absent (or saved empty: unknown)."""
    array = arrays.get(name)
    if array is None or array.shape == (0,):
        return None
    if array.dtype.kind != "U" or array.shape != (rows,):
        raise ValueError(
            f"feature file {path}: {name} must be {rows} strings, one per image; "
            f"got shape {array.shape} of {array.dtype}"
        )
    return [str(value) for value in array]


#: The metadata keys that are used, and the type each must have.
_META_TYPES: dict[str, type] = {
    "format": int,
    "encoder": str,
    "weights": str,
    "weights_key": str,
    "image_set": str,
    "n_images": int,
    "shard": list,
    "source": str,
    "preprocessing": dict,
}


def _meta(array: np.ndarray | None, path: Path) -> dict[str, Any]:
    if array is None:
        return {}
    try:
        meta = json.loads(str(array)) if array.dtype.kind == "U" else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"feature file {path}: meta must be a JSON object")

    wrong = [
        key
        for key, kind in _META_TYPES.items()
        if key in meta and type(meta[key]) is not kind
    ]
    if wrong:
        raise ValueError(
            f"feature file {path}: meta has values of the wrong type for "
            f"{', '.join(wrong)}"
        )
    shard = meta.get("shard", [0, 1])
    if not (
        len(shard) == 2
        and all(type(v) is int for v in shard)
        and 0 <= shard[0] < shard[1]
    ):
        raise ValueError(
            f"feature file {path}: meta shard must be [i, n] with 0 <= i < n; "
            f"got {shard}"
        )
    return meta


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
