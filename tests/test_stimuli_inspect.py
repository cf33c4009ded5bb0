"""Inspecting a folder: counts, sizes, formats, metadata, duplicates, problems."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from stimuli.inspect import inspect_folder
from stimuli.normalize import StimulusImportError


def write(path: Path, image: Image.Image, fmt: str = "PNG", **params) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    path.write_bytes(buffer.getvalue())


def noise(seed: int, size=(32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "set"
    write(root / "real" / "a.png", noise(1))
    write(root / "real" / "b.png", noise(2, (64, 48)))
    exif = Image.Exif()
    exif[0x0131] = "camera firmware"
    write(root / "real" / "c.jpg", noise(3), "JPEG", exif=exif)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "steps: 50, sampler: DDIM")
    write(root / "model" / "x.png", noise(4), pnginfo=info)
    write(root / "model" / "y.webp", noise(1), "WEBP", lossless=True)  # = real/a.png
    write(root / "model" / "grey.png", noise(5).convert("L"))
    (root / "model" / "bad.png").write_bytes(b"")
    (root / "notes.md").write_text("# notes\n")
    write(root / ".cache" / "z.png", noise(6))
    return root


def test_inspect_counts_everything(folder):
    report = inspect_folder(folder, progress=False)

    assert report.counts_by_source() == Counter({"real": 3, "model": 3})
    assert report.sizes() == Counter({(32, 32): 5, (64, 48): 1})
    assert report.formats() == Counter({"PNG": 4, "JPEG": 1, "WEBP": 1})
    assert report.modes() == Counter({"RGB": 5, "L": 1})
    with_metadata = {Path(f.path).name: f.metadata for f in report.with_metadata()}
    assert with_metadata == {"c.jpg": ("EXIF",), "x.png": ("tEXt",)}
    assert [
        (Path(d.path).name, Path(d.first_path).name) for d in report.duplicates
    ] == [("a.png", "y.webp")]
    assert [(Path(p.path).name, p.reason) for p in report.problems] == [
        ("bad.png", "empty file")
    ]
    assert report.ignored == [str(folder / "notes.md")]


def test_inspect_writes_nothing(folder):
    before = {p: p.stat().st_mtime_ns for p in folder.parent.rglob("*")}
    inspect_folder(folder, progress=False)
    after = {p: p.stat().st_mtime_ns for p in folder.parent.rglob("*")}
    assert after == before


def test_rendering_names_every_finding(folder):
    text = inspect_folder(folder, progress=False).render()
    lines = text.splitlines()
    assert lines[0] == (
        f"Folder {folder}: 6 readable image(s), 1 unreadable, 1 duplicate(s), "
        "1 other file(s) ignored."
    )
    assert "Formats: JPEG 1, PNG 4, WEBP 1" in lines
    assert "Colour modes: L 1, RGB 5" in lines
    assert "Metadata: EXIF 1, tEXt 1 (in 2 file(s); removed on import)" in lines
    assert "Shorter side (px): min 32, median 32, max 48" in lines
    assert any(line.endswith("bad.png: empty file") for line in lines)
    assert any("a.png: same as" in line and line.endswith("y.webp") for line in lines)


def test_inspect_of_a_missing_folder(tmp_path):
    with pytest.raises(StimulusImportError, match="folder not found"):
        inspect_folder(tmp_path / "missing", progress=False)


def test_inspect_of_the_demo_layout_uses_relative_source_folders(tmp_path):
    write(tmp_path / "generated" / "m1" / "a.png", noise(1))
    write(tmp_path / "practice" / "generated" / "b.png", noise(2))
    report = inspect_folder(tmp_path, progress=False)
    assert set(report.counts_by_source()) == {"generated/m1", "practice/generated"}
