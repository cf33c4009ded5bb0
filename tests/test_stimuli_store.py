"""The content store: one file per digest, written atomically and idempotently."""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stimuli.normalize import NormalizedImage, normalize_image
from stimuli.store import ContentStore


def make_image(seed: int) -> NormalizedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return normalize_image(buffer.getvalue())


def leftovers(root: Path) -> list[Path]:
    """Files in the store that are not ``<digest>.png`` (temporary files)."""
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".png")]


def test_put_stores_under_the_digest(tmp_path):
    store = ContentStore(tmp_path / "store")
    image = make_image(0)

    path = store.put(image)

    assert path == tmp_path / "store" / image.digest[:2] / f"{image.digest}.png"
    assert path == store.path(image.digest)
    assert path.read_bytes() == image.data == store.open(image.digest)
    assert store.has(image.digest) and image.digest in store
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert list(store.digests()) == [image.digest]


def test_put_is_idempotent(tmp_path):
    store = ContentStore(tmp_path)
    image = make_image(1)
    first = store.put(image)
    before = first.stat()

    second = store.put(image)

    after = second.stat()
    assert first == second
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert list(store.digests()) == [image.digest]
    assert leftovers(tmp_path) == []


def test_put_writes_a_complete_temporary_file_then_renames_it(tmp_path, monkeypatch):
    store = ContentStore(tmp_path)
    image = make_image(2)
    seen = []
    real_replace = os.replace

    def checking_replace(source, target):
        source, target = Path(source), Path(target)
        # Same folder (so the rename is atomic), target not yet visible, and
        # every byte already in the temporary file.
        seen.append(
            (source.parent == target.parent, target.exists(), source.read_bytes())
        )
        real_replace(source, target)

    monkeypatch.setattr("stimuli.store.os.replace", checking_replace)
    store.put(image)

    assert seen == [(True, False, image.data)]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = ContentStore(tmp_path)
    image = make_image(3)

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stimuli.store.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        store.put(image)

    assert not store.has(image.digest)
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert store.put(image).read_bytes() == image.data


def test_concurrent_puts_of_the_same_and_other_images(tmp_path):
    store = ContentStore(tmp_path)
    images = [make_image(seed) for seed in range(4)]
    errors = []

    def worker(index: int) -> None:
        try:
            for image in images[index % 2 :] + images:
                store.put(image)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(store.digests()) == sorted(image.digest for image in images)
    assert all(store.open(image.digest) == image.data for image in images)
    assert leftovers(tmp_path) == []


def test_a_mislabelled_image_is_refused(tmp_path):
    image = make_image(4)
    forged = dataclasses.replace(image, data=image.data + b"x")
    with pytest.raises(ValueError, match="does not match its data"):
        ContentStore(tmp_path).put(forged)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("digest", ["", "abc", "G" * 64, "A" * 64, "../" + "a" * 61])
def test_bad_digests_name_what_is_allowed(tmp_path, digest):
    store = ContentStore(tmp_path)
    with pytest.raises(ValueError, match="64 lower-case hexadecimal"):
        store.path(digest)
    assert digest not in store


def test_open_of_a_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image with digest"):
        ContentStore(tmp_path).open("0" * 64)


def test_digests_skip_foreign_files(tmp_path):
    store = ContentStore(tmp_path)
    image = make_image(5)
    store.put(image)
    (tmp_path / ".staging" / "ab").mkdir(parents=True)
    (tmp_path / ".staging" / "ab" / ("ab" + "0" * 62 + ".png")).write_bytes(b"x")
    (tmp_path / image.digest[:2] / "notes.png").write_bytes(b"x")
    (tmp_path / "manifest.csv").write_text("digest\n")
    assert list(store.digests()) == [image.digest]
    assert list(ContentStore(tmp_path / "missing").digests()) == []
