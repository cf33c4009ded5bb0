"""Which files ``analysis metrics`` reads from a folder, against ``stimuli``.

Both take their image names from :mod:`stimuli.suffixes`: metrics reads
every name stimuli import plus ``.bmp`` and ``.tif``/``.tiff``, which
``stimuli inspect`` reports as unsupported formats rather than ignoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from analysis.metrics.folders import IMAGE_EXTENSIONS, list_images
from stimuli.cli import main as stimuli
from stimuli.inspect import inspect_folder
from stimuli.suffixes import ACCEPTED_SUFFIXES, IMAGE_SUFFIXES, METRIC_SUFFIXES

# suffix -> the Pillow format its file is written in
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}


@pytest.fixture
def one_of_each(tmp_path) -> Path:
    """A folder with one image per suffix (upper case for .PNG), and a .txt."""
    folder = tmp_path / "each"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (suffix, fmt) in enumerate(FORMATS.items()):
        pixels = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
        name = f"{i:02d}{suffix.upper() if suffix == '.png' else suffix}"
        Image.fromarray(pixels).save(folder / name, fmt)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_one_definition() -> None:
    assert IMAGE_EXTENSIONS == METRIC_SUFFIXES
    assert (*ACCEPTED_SUFFIXES, ".bmp", ".tif", ".tiff") == METRIC_SUFFIXES
    # every name metrics read is at least reported by stimuli, never ignored
    assert set(METRIC_SUFFIXES) <= set(IMAGE_SUFFIXES)
    assert set(FORMATS) - {".gif"} == set(METRIC_SUFFIXES)


def test_each_suffix_is_handled_alike(one_of_each) -> None:
    report = inspect_folder(one_of_each, progress=False)
    stimuli_read = sorted(Path(f.path).name for f in report.files)
    stimuli_refused = {Path(p.path).name: p.reason for p in report.problems}
    metrics_read = list_images(one_of_each)

    assert stimuli_read == [
        "00.PNG", "01.jpg", "02.jpeg", "03.jpe", "04.jfif", "05.webp",
    ]  # fmt: skip
    assert metrics_read == [*stimuli_read, "06.bmp", "07.tif", "08.tiff"]
    assert stimuli_refused == {
        "06.bmp": "unsupported format BMP (allowed: PNG, JPEG, WebP)",
        "07.tif": "unsupported format TIFF (allowed: PNG, JPEG, WebP)",
        "08.tiff": "unsupported format TIFF (allowed: PNG, JPEG, WebP)",
        "09.gif": "unsupported format GIF (allowed: PNG, JPEG, WebP)",
    }
    assert [Path(p).name for p in report.ignored] == ["notes.txt"]

    result = CliRunner().invoke(stimuli, ["inspect", str(one_of_each), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"Folder {one_of_each}: 6 readable image(s), 4 unreadable"
    )


def test_metrics_decode_every_suffix_they_list(one_of_each) -> None:
    pytest.importorskip("torch")
    from analysis.metrics.preprocess import load_image

    for name in list_images(one_of_each):
        image = load_image(one_of_each / name)
        assert (image.mode, image.size) == ("RGB", (24, 24)), name


def test_hidden_files_and_folders_are_skipped_as_stimuli_skips_them(tmp_path: Path):
    Image.new("RGB", (32, 32), (10, 20, 30)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (32, 32), (40, 50, 60)).save(tmp_path / "sub" / "b.png")
    # A macOS resource fork is not an image; hidden folders hold no stimuli.
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / ".thumbnails").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / ".thumbnails" / "c.png")

    assert list_images(tmp_path) == ["a.png", "sub/b.png"]
    report = inspect_folder(tmp_path)
    assert sorted(
        Path(f.path).relative_to(tmp_path).as_posix() for f in report.files
    ) == [
        "a.png",
        "sub/b.png",
    ]
    assert report.problems == []
