"""Importing the real stimulus set ../shared/data/realism-bench (skipped when absent).

The set holds 1,499 PNGs: real ImageNet-256 and CIFAR-10 images and samples
from 22 published models, listed in its manifest.csv.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from stimuli.importer import ImportReport, import_folder
from stimuli.normalize import PNG_COMPRESS_LEVEL
from stimuli.store import ContentStore

N_IMAGES = 1499


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, payload) chunks, checking the signature and CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        offset += 12 + length
    return chunks


@pytest.fixture(scope="module")
def bench(shared_data: Path) -> Path:
    folder = shared_data / "realism-bench"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


@pytest.fixture(scope="module")
def imported(bench: Path, tmp_path_factory) -> tuple[ImportReport, ContentStore]:
    store = ContentStore(tmp_path_factory.mktemp("bench-store"))
    return import_folder(bench, store=store, progress=False), store


# The full import takes about 20 s on two cores, hence slow.
@pytest.mark.slow
def test_all_images_import_with_their_sources(bench, imported):
    report, store = imported
    with (bench / "manifest.csv").open(newline="") as file:
        manifest = {row["path"]: row for row in csv.DictReader(file)}
    assert len(manifest) == N_IMAGES

    assert report.problems == [] and report.duplicates == []
    assert len(report.imported) == N_IMAGES
    assert sorted(report.ignored) == [
        str(bench / "README.txt"),
        str(bench / "manifest.csv"),
    ]
    for image in report.imported:
        row = manifest[Path(image.original_path).relative_to(bench).as_posix()]
        assert (image.source, image.is_real) == (row["source"], row["is_real"] == "1")
        assert image.notes == ()  # 8-bit RGB PNGs without metadata: nothing to convert
    assert len(list(store.digests())) == N_IMAGES


@pytest.mark.slow
def test_stored_images_are_plain_and_encoded_alike(imported):
    report, store = imported
    headers, zlib_headers, layouts = set(), set(), set()
    for image in report.imported:
        data = store.open(image.digest)
        assert hashlib.sha256(data).hexdigest() == image.digest
        chunks = png_chunks(data)
        kinds = [kind for kind, _ in chunks]
        # No metadata chunk of any kind: IHDR, IDAT..., IEND only.
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
        assert set(kinds[1:-1]) == {b"IDAT"}
        width, height, *layout = struct.unpack(">IIBBBBB", chunks[0][1])
        assert (width, height) == (image.width, image.height)
        layouts.add(tuple(layout))
        stream = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
        zlib_headers.add(stream[:2])
        # The same deflate settings reproduce every stream bit for bit.
        deflate = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9)
        assert deflate.compress(zlib.decompress(stream)) + deflate.flush() == stream
        with Image.open(io.BytesIO(data)) as decoded:
            headers.add((decoded.format, decoded.mode, tuple(decoded.info)))

    # 8-bit, RGB, deflate, adaptive filtering, no interlace; one zlib level.
    assert layouts == {(8, 2, 0, 0, 0)}
    assert zlib_headers == {b"\x78\x01"}
    assert headers == {("PNG", "RGB", ())}


def test_bad_files_are_reported_and_the_rest_imported(bench, tmp_path):
    folder = tmp_path / "mixed"
    good = []
    for source in (
        "imagenet256/real",
        "imagenet256/dit-xl-2",
        "cifar10/real",
        "cifar10/ddpm",
    ):
        files = sorted((bench / source).glob("*.png"))
        for path in files[:10]:
            target = (
                folder / source.split("/")[1] / f"{source.split('/')[0]}-{path.name}"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            good.append(target)
        spare = files[-1]
    # The four bad files: a truncated PNG, an empty file, a text file named .png
    # and a CMYK JPEG (made from an image not otherwise in the folder).
    truncated = folder / "real" / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:5000])
    empty = folder / "real" / "empty.png"
    empty.write_bytes(b"")
    text = folder / "ddpm" / "notes.png"
    text.write_text("these samples were made with 1000 steps\n")
    cmyk = folder / "ddpm" / "cmyk.jpg"
    with Image.open(spare) as image:
        image.convert("CMYK").save(cmyk, "JPEG", quality=95)

    report = import_folder(folder, progress=False)

    assert sorted((p.path, p.reason) for p in report.problems) == sorted([
        (str(truncated), "truncated or corrupt image"),
        (str(empty), "empty file"),
        (str(text), "not an image"),
    ])  # fmt: skip
    assert [image.original_path for image in report.converted] == [str(cmyk)]
    assert report.converted[0].notes == (
        "converted from CMYK to RGB",
        "no usable ICC profile: naive CMYK conversion",
    )
    imported = sorted(image.original_path for image in report.imported)
    assert imported == sorted([*map(str, good), str(cmyk)])
    assert report.duplicates == [] and report.ignored == []
