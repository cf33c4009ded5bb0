"""Importing folders: sources, problems, duplicates, study layouts, manifest."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stimuli.importer import (
    MANIFEST_COLUMNS,
    FolderProblems,
    ImportedImage,
    SourceFolder,
    import_folder,
    import_sources,
    read_manifest,
    study_image_sources,
    write_manifest,
)
from stimuli.normalize import ImageProblem, StimulusImportError
from stimuli.store import ContentStore


def pixels(seed: int, size: tuple[int, int] = (40, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def write(path: Path, image: Image.Image | bytes, fmt: str = "PNG", **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
        return path
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Two sources, one duplicate across them, four bad files, noise to ignore."""
    root = tmp_path / "images"
    write(root / "real" / "a.png", Image.fromarray(pixels(1)))
    write(root / "real" / "b.jpg", Image.fromarray(pixels(2)), "JPEG", quality=90)
    write(root / "real" / "c.webp", Image.fromarray(pixels(3)), "WEBP", lossless=True)
    write(root / "real" / "nested" / "d.png", Image.fromarray(pixels(4)))
    write(root / "real" / ".hidden.png", Image.fromarray(pixels(5)))
    (root / "real" / "README.txt").write_text("photos from the lab\n")
    write(root / "biggan" / "x.png", Image.fromarray(pixels(6)))
    # The same pixels as real/a.png, in another format: a duplicate.
    write(root / "biggan" / "y.webp", Image.fromarray(pixels(1)), "WEBP", lossless=True)
    write(root / "biggan" / "z.jpg", Image.fromarray(pixels(7)).convert("CMYK"), "JPEG")
    good = io.BytesIO()
    Image.fromarray(pixels(8)).save(good, "PNG")
    write(
        root / "broken" / "truncated.png", good.getvalue()[: len(good.getvalue()) // 2]
    )
    write(root / "broken" / "empty.jpg", b"")
    write(root / "broken" / "text.png", b"not a picture\n")
    write(root / "broken" / "anim.gif", Image.fromarray(pixels(9)), "GIF")
    write(root / ".git" / "objects" / "blob.png", Image.fromarray(pixels(10)))
    return root


def test_import_folder_reports_every_file(mixed_folder):
    report = import_folder(mixed_folder, progress=False, workers=1)

    relative = {
        Path(image.original_path).relative_to(mixed_folder).as_posix(): image
        for image in report.imported
    }
    assert list(relative) == [
        "biggan/x.png",
        "biggan/y.webp",
        "biggan/z.jpg",
        "real/b.jpg",
        "real/c.webp",
        "real/nested/d.png",
    ]
    # The folder directly holding a file names its source.
    assert {name: (i.source, i.is_real) for name, i in relative.items()} == {
        "biggan/x.png": ("biggan", False),
        "biggan/y.webp": ("biggan", False),
        "biggan/z.jpg": ("biggan", False),
        "real/b.jpg": ("real", True),
        "real/c.webp": ("real", True),
        "real/nested/d.png": ("nested", False),
    }
    assert all(image.role == "main" for image in report.imported)
    assert all((i.width, i.height) == (32, 32) for i in report.imported)

    problems = {Path(p.path).name: p.reason for p in report.problems}
    assert problems == {
        "anim.gif": "unsupported format GIF (allowed: PNG, JPEG, WebP)",
        "empty.jpg": "empty file",
        "text.png": "not an image",
        "truncated.png": "truncated or corrupt image",
    }
    assert [Path(i.original_path).name for i in report.converted] == ["z.jpg"]
    assert report.converted[0].notes[0] == "converted from CMYK to RGB"
    assert report.ignored == [str(mixed_folder / "real" / "README.txt")]


def test_duplicates_keep_the_first_file_in_sorted_order(mixed_folder):
    report = import_folder(mixed_folder, progress=False, workers=1)
    (duplicate,) = report.duplicates
    # biggan/ sorts before real/, so the WebP copy is kept and a.png reported.
    assert (
        Path(duplicate.first_path).relative_to(mixed_folder).as_posix()
        == "biggan/y.webp"
    )
    assert Path(duplicate.path).relative_to(mixed_folder).as_posix() == "real/a.png"
    assert (duplicate.first_source, duplicate.source) == ("biggan", "real")
    kept = [i for i in report.imported if i.digest == duplicate.digest]
    assert [Path(i.original_path).name for i in kept] == ["y.webp"]
    assert any("sources differ: biggan and real" in line for line in report.lines())


def test_dry_run_writes_nothing_and_a_store_gets_every_image(mixed_folder, tmp_path):
    before = sorted(p for p in tmp_path.rglob("*"))
    dry = import_folder(mixed_folder, progress=False, workers=1)
    assert sorted(p for p in tmp_path.rglob("*")) == before

    store = ContentStore(tmp_path / "store")
    stored = import_folder(mixed_folder, store=store, progress=False, workers=1)
    assert stored == dry
    assert sorted(store.digests()) == sorted(image.digest for image in dry.imported)


def test_worker_processes_give_the_same_report(mixed_folder):
    serial = import_folder(mixed_folder, progress=False, workers=1, size=32)
    pooled = import_folder(mixed_folder, progress=False, workers=2, size=32)
    assert pooled == serial
    assert {(i.width, i.height) for i in pooled.imported} == {(32, 32)}


def test_report_lines_summarise_a_conversion_shared_by_many(tmp_path):
    for i in range(7):
        write(tmp_path / "grey" / f"{i}.png", Image.fromarray(pixels(i)).convert("L"))
    write(
        tmp_path / "grey" / "cmyk.jpg",
        Image.fromarray(pixels(9)).convert("CMYK"),
        "JPEG",
    )
    grey = tmp_path / "grey"
    lines = import_folder(grey, progress=False).lines()
    converted = [line for line in lines if line.startswith("converted")]
    assert converted == [
        f"converted 7 images ({grey / '0.png'}, ...): converted from L to RGB",
        f"converted {grey / 'cmyk.jpg'}: converted from CMYK to RGB; "
        "no usable ICC profile: naive CMYK conversion",
    ]


def test_a_broken_pool_finishes_in_process(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from stimuli import importer

    class DyingPool:
        def __init__(self, *args, **kwargs):
            pass

        def map(self, func, items, chunksize=1):
            yield func(items[0])
            yield func(items[1])
            raise BrokenProcessPool("a worker was killed")

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(importer, "ProcessPoolExecutor", DyingPool)
    items = [str(i) for i in range(6)]
    with pytest.warns(RuntimeWarning, match="a worker was killed"):
        results = list(
            importer.parallel_map(str.upper, items, workers=2, progress=False)
        )
    assert results == items


def test_a_given_source_applies_to_every_image(mixed_folder):
    report = import_folder(mixed_folder / "real", source="REAL", progress=False)
    assert {(i.source, i.is_real) for i in report.imported} == {("real", True)}
    report = import_folder(mixed_folder / "biggan", source="BigGAN", role="practice",
                           progress=False)  # fmt: skip
    assert {(i.source, i.is_real, i.role) for i in report.imported} == {
        ("BigGAN", False, "practice")
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "real", "is_real": False}, "is_real: got False for source 'real'"),
        (
            {"source": "biggan", "is_real": True},
            "is_real: got True for source 'biggan'",
        ),
        ({"source": "x", "role": "training"}, "role: got 'training'; allowed: 'main'"),
        ({"source": ""}, "source: got ''; allowed"),
        ({"source": "a/b"}, "without '/'"),
    ],
)
def test_source_folder_refuses_contradictions(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SourceFolder(tmp_path, **kwargs)


def test_missing_folder_and_bad_options(tmp_path):
    with pytest.raises(StimulusImportError, match="folder not found"):
        import_folder(tmp_path / "nope", progress=False)
    with pytest.raises(ValueError, match="crop: got 'left'"):
        import_folder(tmp_path, crop="left", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers: got 0"):
        import_folder(tmp_path, workers=0, progress=False)


def test_report_lines_list_every_item(mixed_folder):
    lines = import_folder(mixed_folder, progress=False, workers=1).lines()
    assert lines[0] == (
        "Imported 6 image(s); 4 skipped, 1 duplicate(s), 1 converted, "
        "1 non-image file(s) ignored."
    )
    assert sum(line.startswith("skipped ") for line in lines) == 4
    assert sum(line.startswith("duplicate ") for line in lines) == 1
    assert sum(line.startswith("converted ") for line in lines) == 1


# --- study layouts -----------------------------------------------------------------


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    for i in range(3):
        write(images / "real" / f"r{i}.png", Image.fromarray(pixels(100 + i)))
        write(
            images / "generated" / "biggan" / f"b{i}.png",
            Image.fromarray(pixels(200 + i)),
        )
        write(
            images / "generated" / "dit-xl-2" / f"d{i}.png",
            Image.fromarray(pixels(300 + i)),
        )
    write(images / "practice" / "real" / "p0.png", Image.fromarray(pixels(400)))
    write(images / "practice" / "generated" / "g0.png", Image.fromarray(pixels(401)))
    write(
        images / "practice" / "generated" / "biggan" / "g1.png",
        Image.fromarray(pixels(402)),
    )
    write(images / "checks" / "generated" / "noise.png", Image.fromarray(pixels(500)))
    return tmp_path


TABLE = {
    "real": "images/real",
    "generated": "images/generated",
    "practice": "images/practice",
    "checks": "images/checks",
}


def test_study_layout_becomes_source_folders(study_dir):
    sources = study_image_sources(dict(TABLE), study_dir)

    images = (study_dir / "images").resolve()
    assert sources == [
        SourceFolder(images / "real", "real", True, "main"),
        SourceFolder(images / "generated" / "biggan", "biggan", False, "main"),
        SourceFolder(images / "generated" / "dit-xl-2", "dit-xl-2", False, "main"),
        SourceFolder(images / "practice" / "real", "real", True, "practice"),
        SourceFolder(images / "practice" / "generated", None, False, "practice"),
        SourceFolder(images / "checks" / "generated", None, False, "check"),
    ]
    report = import_sources(sources, progress=False)
    assert report.problems == [] and report.duplicates == []
    assert report.counts() == {
        ("main", "real"): 3,
        ("main", "biggan"): 3,
        ("main", "dit-xl-2"): 3,
        ("practice", "real"): 1,
        ("practice", "generated"): 1,
        ("practice", "biggan"): 1,
        ("check", "generated"): 1,
    }
    truth = {(i.role, i.source): i.is_real for i in report.imported}
    assert truth[("practice", "real")] and not truth[("practice", "generated")]


def test_optional_keys_may_be_absent_or_none(study_dir):
    table = dict(TABLE, practice=None)
    del table["checks"]
    roles = {folder.role for folder in study_image_sources(table, study_dir)}
    assert roles == {"main"}


def _mutate(study_dir: Path, change: str) -> dict:
    images = study_dir / "images"
    table = dict(TABLE)
    if change == "missing real key":
        del table["real"]
    elif change == "unknown key":
        table["extra"] = "images/extra"
    elif change == "not a string":
        table["generated"] = 5
    elif change == "missing real folder":
        table["real"] = "images/photos"
    elif change == "empty real folder":
        for path in (images / "real").iterdir():
            path.unlink()
        (images / "real" / "notes.txt").write_text("x")
    elif change == "no model subfolders":
        for model in ("biggan", "dit-xl-2"):
            for path in (images / "generated" / model).iterdir():
                path.unlink()
            (images / "generated" / model).rmdir()
    elif change == "loose generated files":
        write(images / "generated" / "stray.png", Image.fromarray(pixels(9)))
    elif change == "model named real":
        write(images / "generated" / "Real" / "x.png", Image.fromarray(pixels(9)))
    elif change == "models equal up to case":
        write(images / "generated" / "BigGAN" / "x.png", Image.fromarray(pixels(9)))
    elif change == "empty model folder":
        (images / "generated" / "sngan").mkdir()
    elif change == "practice without generated":
        for path in sorted(
            (images / "practice" / "generated").rglob("*"), reverse=True
        ):
            path.rmdir() if path.is_dir() else path.unlink()
        (images / "practice" / "generated").rmdir()
    elif change == "practice with another subfolder":
        write(images / "practice" / "fake" / "x.png", Image.fromarray(pixels(9)))
    elif change == "checks without subfolders":
        for path in sorted((images / "checks").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    elif change == "nested folders":
        table["practice"] = "images/real"
    elif change == "practice inside real":
        table["practice"] = "images/real/practice"
    elif change == "practice model named real":
        write(
            images / "practice" / "generated" / "real" / "x.png",
            Image.fromarray(pixels(9)),
        )
    return table


MODEL_EXPECTED = r"expected one subfolder per model, named after the model"
MISTAKES = {
    "missing real key": r"images.real: required key is missing",
    "unknown key": r"images.extra: unknown key; allowed keys: real, generated, "
    r"practice, checks",
    "not a string": r"images.generated: got 5; allowed: a folder path",
    "missing real folder": r"images.real: .*images/photos: folder not found "
    r"\(expected a folder of real images\)",
    "empty real folder": r"images.real: .*images/real: no image files "
    r"\(expected real images",
    "no model subfolders": rf"images.generated: .*: no model subfolders "
    rf"\({MODEL_EXPECTED}\)",
    "loose generated files": r"images.generated: .*: image files directly in the "
    rf"folder \(stray.png\); {MODEL_EXPECTED}",
    "model named real": r"images.generated: .*/Real: a model cannot be named "
    r"'Real'; 'real' is reserved",
    "models equal up to case": r"model folders 'BigGAN' and 'biggan' differ only "
    r"in case",
    "empty model folder": r"images.generated: .*/sngan: no image files "
    r"\(expected the images of model 'sngan'",
    "practice without generated": r"images.practice: .*: missing subfolder "
    r"generated/ \(expected subfolders real/ and generated/\)",
    "practice with another subfolder": r"images.practice: .*/fake: unexpected "
    r"subfolder",
    "checks without subfolders": r"images.checks: .*: missing subfolder real/ and "
    r"generated/ \(expected subfolders real/ and/or generated/\)",
    "nested folders": r"images.practice: .*: is the same folder as images.real",
    "practice inside real": r"images.practice: .*: lies inside images.real",
    "practice model named real": r"images.practice: .*/generated/real: a model "
    r"cannot be named 'real'",
}


@pytest.mark.parametrize("change", sorted(MISTAKES))
def test_layout_mistakes_name_key_path_and_expectation(study_dir, change):
    table = _mutate(study_dir, change)
    with pytest.raises(StimulusImportError, match=MISTAKES[change]):
        study_image_sources(table, study_dir)


def test_every_layout_mistake_is_listed_not_only_the_first(study_dir):
    table = _mutate(study_dir, "missing real folder")
    table["practice"] = "images/generated/biggan"
    table["checks"] = "images/none"
    write(study_dir / "images/generated/Real/x.png", Image.fromarray(pixels(9)))
    write(study_dir / "images/generated/biggan2/notes.txt", b"")

    with pytest.raises(FolderProblems) as caught:
        study_image_sources(table, study_dir)

    images = (study_dir / "images").resolve()
    assert caught.value.problems == [
        f"images.real: {images / 'photos'}: folder not found (expected a folder "
        "of real images)",
        f"images.generated: {images / 'generated/Real'}: a model cannot be named "
        "'Real'; 'real' is reserved for real images (put them in images.real)",
        f"images.generated: {images / 'generated/biggan2'}: no image files "
        "(expected the images of model 'biggan2'; image files end in .png, .jpg, "
        ".jpeg, .jpe, .jfif, .webp)",
        f"images.practice: {images / 'generated/biggan'}: lies inside "
        f"images.generated ({images / 'generated'}); the folders must be separate "
        "so no image serves two roles",
        f"images.checks: {images / 'none'}: folder not found (expected subfolders "
        "real/ and/or generated/)",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)


# --- manifest ----------------------------------------------------------------------


def test_manifest_is_written_and_merged(tmp_path):
    manifest = tmp_path / "store" / "manifest.csv"
    manifest.parent.mkdir()
    notes = ("converted from L to RGB", "upscaled from 20x20 to 32x32")
    original = str(tmp_path / "in" / "x.png")
    first = ImportedImage("a" * 64, "real", True, "main", original, 32, 32, notes)
    second = ImportedImage(
        "b" * 64, "biggan", False, "check", "/elsewhere/y.png", 32, 32
    )
    from stimuli.importer import ImportReport

    assert (
        write_manifest(ImportReport([first]), manifest, relative_to=tmp_path / "in")
        == 1
    )
    assert write_manifest(ImportReport([second, first]), manifest) == 2

    with manifest.open(newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        rows = list(reader)
    assert rows[0] == {
        "digest": "a" * 64,
        "source": "real",
        "is_real": "1",
        "role": "main",
        "original_path": original,  # the second import's row wins
        "width": "32",
        "height": "32",
        "notes": "converted from L to RGB; upscaled from 20x20 to 32x32",
    }
    assert rows[1]["is_real"] == "0" and rows[1]["role"] == "check"

    manifest.write_text("path,source\nx,y\n")
    with pytest.raises(ValueError, match="existing manifest has columns"):
        write_manifest(ImportReport([first]), manifest)


def test_read_manifest(tmp_path):
    manifest = tmp_path / "manifest.csv"
    assert read_manifest(manifest) == {}
    assert read_manifest(tmp_path / "file" / "manifest.csv") == {}

    header = ",".join(MANIFEST_COLUMNS)
    row = "a" * 64 + ",real,1,main,x.png,32,32,"
    # a byte-order mark and blank lines, as a spreadsheet program may leave
    manifest.write_bytes(f"\ufeff{header}\r\n\r\n{row}\r\n".encode())
    rows = read_manifest(manifest)
    assert list(rows) == ["a" * 64]
    assert rows["a" * 64]["original_path"] == "x.png"

    manifest.write_text(f"{header}\n{row},extra\n")
    with pytest.raises(StimulusImportError, match=r"line 2: has 9 field\(s\)"):
        read_manifest(manifest)


def test_write_manifest_uses_the_rows_read_before_the_import(tmp_path):
    manifest = tmp_path / "manifest.csv"
    first = ImportedImage("a" * 64, "real", True, "main", "x.png", 32, 32)
    second = ImportedImage("b" * 64, "biggan", False, "main", "y.png", 32, 32)
    from stimuli.importer import ImportReport

    write_manifest(ImportReport([first]), manifest)
    earlier = read_manifest(manifest)
    assert write_manifest(ImportReport([second]), manifest, earlier=earlier) == 2
    assert list(read_manifest(manifest)) == ["a" * 64, "b" * 64]


def test_problem_records_are_plain_values():
    problem = ImageProblem("a.png", "empty file")
    assert (problem.path, problem.reason) == ("a.png", "empty file")
