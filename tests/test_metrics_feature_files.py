"""Feature files (.npz) that are damaged or foreign: a message, never a traceback.

Every way a feature file is read (an input of ``analysis metrics``, a shard
for ``--merge-shards``, a cache entry) goes through
:func:`analysis.metrics.featureset.load_feature_file`; nothing here needs
torch.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.metrics.cache import FeatureCache
from analysis.metrics.featureset import (
    FeatureSet,
    load_feature_file,
    save_feature_file,
)


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def meta(**changes) -> np.ndarray:
    return np.asarray(json.dumps({"format": 1, "shard": [0, 1], **changes}))


ROWS = np.ones((6, 3))
PATHS = np.asarray([f"{i}.png" for i in range(6)])

# name -> (file bytes, the message after "Error: ")
# ({path} stands for the file)
BAD_FILES = {
    "not a zip": (
        b"PK\x03\x04garbage",
        "cannot read feature file {path}: not an .npz archive, or a truncated "
        "one (File is not a zip file)",
    ),
    "truncated": (
        npz(features=ROWS)[:200],
        "cannot read feature file {path}: not an .npz archive, or a truncated "
        "one (File is not a zip file)",
    ),
    "a pickle inside": (
        npz(features=np.asarray([{"a": 1}], dtype=object)),
        "cannot read feature file {path}: it holds pickled Python objects, which "
        "are never loaded",
    ),
    "a pickle": (
        pickle.dumps({"features": ROWS}),
        "cannot read feature file {path}: it holds pickled Python objects, which "
        "are never loaded",
    ),
    # np.load hands anything that is not a zip or .npy to its pickle reader
    "text": (
        b"x\n",
        "cannot read feature file {path}: not a feature file (.npz, a zip archive "
        "of arrays)",
    ),
    "a protocol 0 pickle": (
        pickle.dumps([1.0], protocol=0),
        "cannot read feature file {path}: not a feature file (.npz, a zip archive "
        "of arrays)",
    ),
    "empty": (
        b"",
        "cannot read feature file {path}: an empty file, not a feature file (.npz, "
        "a zip archive of arrays)",
    ),
    "an .npy": (
        npy(ROWS),
        "cannot read feature file {path}: a single .npy array, not an .npz archive",
    ),
    "no features": (
        npz(a=ROWS, b=ROWS),
        "feature file {path} has no 'features' array (has ['a', 'b'])",
    ),
    "strings as features": (
        npz(features=np.asarray([["x", "y"]])),
        "feature file {path}: features must be a 2-D array of numbers (images x "
        "dimensions); got a 2-D array of <U1",
    ),
    "1-D features": (
        npz(features=np.ones(6)),
        "feature file {path}: features must be a 2-D array of numbers (images x "
        "dimensions); got a 1-D array of float64",
    ),
    "too few paths": (
        npz(features=ROWS, paths=PATHS[:4]),
        "feature file {path}: paths must be 6 strings, one per image; got shape "
        "(4,) of <U5",
    ),
    "numbers as labels": (
        npz(features=ROWS, labels=np.arange(6)),
        "feature file {path}: labels must be 6 strings, one per image; got shape "
        "(6,) of int64",
    ),
    "logits of other images": (
        npz(features=ROWS, logits=np.ones((5, 10))),
        "feature file {path}: logits has 5 rows; features has 6",
    ),
    "meta not JSON": (
        npz(features=ROWS, meta=np.asarray("{oops")),
        "feature file {path}: meta must be a JSON object",
    ),
    "meta of wrong types": (
        npz(features=ROWS, meta=meta(source=3, encoder=["pixels"])),
        "feature file {path}: meta has values of the wrong type for encoder, source",
    ),
    "meta shard out of range": (
        npz(features=ROWS, meta=meta(shard=[2, 2])),
        "feature file {path}: meta shard must be [i, n] with 0 <= i < n; got [2, 2]",
    ),
}


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["metrics", *map(str, args)])
    assert not isinstance(result.exception, AssertionError)
    return result.exit_code, result.output


@pytest.fixture
def real(tmp_path) -> Path:
    rows = np.random.default_rng(0).normal(size=(6, 3))
    return save_feature_file(tmp_path / "real.npz", FeatureSet(rows, []))


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_input_file_is_named(tmp_path, real, kind) -> None:
    data, message = BAD_FILES[kind]
    bad = tmp_path / "gen.npz"
    bad.write_bytes(data)
    out = tmp_path / "out"
    expected = "Error: " + message.format(path=bad)

    as_input = run(real, bad, "-o", out, "-e", "pixels", "--dataset", "d")
    as_shard = run("--merge-shards", bad, "-o", out)

    for code, output in (as_input, as_shard):
        assert code == 1, output
        assert output.startswith(expected), output
        assert output.count("\n") == 1, output  # one line: no traceback
    assert not out.exists()
    with pytest.raises(ValueError) as caught:
        load_feature_file(bad)
    assert str(caught.value).startswith(message.format(path=bad))


@pytest.mark.parametrize("kind", ["not a zip", "truncated", "meta of wrong types"])
def test_a_bad_cache_entry_is_a_miss(tmp_path, kind) -> None:
    cache = FeatureCache(tmp_path / "cache")
    key = "ab" + "0" * 62
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(BAD_FILES[kind][0])

    assert cache.get(key) is None

    cache.put(key, FeatureSet(ROWS, list(PATHS)))
    entry = cache.get(key)
    assert entry is not None and entry.paths == list(PATHS)


def test_good_files_still_read(tmp_path) -> None:
    labels = [f"c{i % 2}" for i in range(6)]
    written = FeatureSet(
        ROWS, list(PATHS), {"encoder": "pixels", "shard": [1, 2]}, np.ones((6, 4)),
        labels,
    )  # fmt: skip
    path = save_feature_file(tmp_path / "f.npz", written)
    loaded = load_feature_file(path)
    assert (loaded.paths, loaded.labels, loaded.shard) == (list(PATHS), labels, (1, 2))
    assert loaded.logits is not None and loaded.logits.shape == (6, 4)

    # features of other tools: one unnamed array, no paths or metadata
    (tmp_path / "other.npz").write_bytes(npz(arr_0=ROWS))
    other = load_feature_file(tmp_path / "other.npz")
    assert (other.paths, other.meta) == ([str(i) for i in range(6)], {})
    # saved with no paths: rows are numbered
    unnamed = save_feature_file(tmp_path / "u.npz", FeatureSet(ROWS, []))
    assert load_feature_file(unnamed).paths == [str(i) for i in range(6)]
