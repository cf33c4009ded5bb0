"""The ``stimuli`` command: inspect, import and demo, with good and bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stimuli.cli import main
from stimuli.store import ContentStore


def write(path: Path, image: Image.Image, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    path.write_bytes(buffer.getvalue())


def noise(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write(root / "real" / "a.png", noise(1))
    write(root / "real" / "b.jpg", noise(2), "JPEG")
    write(root / "biggan" / "c.png", noise(3))
    write(root / "biggan" / "a-copy.png", noise(1))
    write(root / "biggan" / "cmyk.jpg", noise(4).convert("CMYK"), "JPEG")
    (root / "biggan" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_import_writes_store_and_manifest(runner, images, tmp_path):
    store = tmp_path / "store"
    args = ["--out", str(store), "--size", "32", "--quiet"]
    result = runner.invoke(main, ["import", str(images), *args])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "Imported 4 image(s); 1 skipped, 1 duplicate(s), 1 converted, "
        "0 non-image file(s) ignored."
    )
    assert (
        f"skipped   {images / 'biggan' / 'broken.png'}: truncated or corrupt image"
        in lines
    )
    assert any(
        line.startswith(f"duplicate {images / 'real' / 'a.png'}") for line in lines
    )
    assert lines[-1] == f"Stored in {store}; manifest.csv has 4 row(s)."

    with (store / "manifest.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["original_path"] for row in rows) == [
        "biggan/a-copy.png", "biggan/c.png", "biggan/cmyk.jpg", "real/b.jpg"
    ]  # fmt: skip
    assert {(row["source"], row["is_real"]) for row in rows} == {
        ("biggan", "0"),
        ("real", "1"),
    }
    assert {(row["width"], row["height"]) for row in rows} == {("32", "32")}
    assert sorted(ContentStore(store).digests()) == sorted(
        row["digest"] for row in rows
    )

    # The same import again adds nothing; another size adds new images.
    args = ["import", str(images), "--out", str(store), "--quiet"]
    assert runner.invoke(main, [*args, "--size", "32"]).exit_code == 0
    assert len(list(ContentStore(store).digests())) == 4
    assert runner.invoke(main, args).output.splitlines()[-1].endswith("has 8 row(s).")
    assert len(list(ContentStore(store).digests())) == 8


def test_import_with_a_source_and_size_zero(runner, images, tmp_path):
    store = tmp_path / "store"
    args = ["--out", str(store), "--source", "sngan", "--size", "0", "--quiet"]
    result = runner.invoke(main, ["import", str(images / "biggan"), *args])
    assert result.exit_code == 0, result.output
    with (store / "manifest.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["source"] for row in rows} == {"sngan"}
    assert {(row["width"], row["height"]) for row in rows} == {("40", "40")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "5"], "allowed: 0 (keep the size) or 16 to 4096 pixels"),
        (["--size", "9000"], "got 9000; allowed"),
        (["--size", "big"], "'big' is not a valid integer"),
        (["--crop", "left"], "'left' is not one of 'center', 'none'"),
        (["--source", "a/b"], "without '/'"),
        (["--workers", "0"], "got 0; allowed: 1 or more"),
        (
            ["--role", "training"],
            "'training' is not one of 'main', 'practice', 'check'",
        ),
    ],
)
def test_import_bad_options_are_usage_errors(runner, images, tmp_path, args, message):
    result = runner.invoke(
        main, ["import", str(images), "--out", str(tmp_path / "s"), *args]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()


def test_import_usage_errors_about_folders(runner, images, tmp_path):
    missing = runner.invoke(main, ["import", str(tmp_path / "nope"), "--out", "s"])
    assert missing.exit_code == 2 and "does not exist" in missing.output

    no_out = runner.invoke(main, ["import", str(images)])
    assert no_out.exit_code == 2 and "Missing option '--out'" in no_out.output

    inside = runner.invoke(
        main, ["import", str(images), "--out", str(images / "store")]
    )
    assert inside.exit_code == 2 and "lies inside FOLDER" in inside.output

    (tmp_path / "file").write_text("x")
    a_file = runner.invoke(
        main, ["import", str(images), "--out", str(tmp_path / "file")]
    )
    assert a_file.exit_code == 2 and "is a file" in a_file.output


def test_import_of_a_folder_without_images_fails(runner, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("nothing here")
    result = runner.invoke(main, ["import", str(empty), "--out", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert f"Error: no image files in {empty}" in result.output


def test_import_where_every_file_is_bad_fails(runner, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_text("hello")
    result = runner.invoke(main, ["import", str(bad), "--out", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert f"skipped   {bad / 'a.png'}: empty file" in result.output
    assert f"skipped   {bad / 'b.jpg'}: not an image" in result.output
    assert f"Error: nothing imported from {bad}" in result.output
    assert not (tmp_path / "s").exists()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("out", ["file.toml/store", "file.toml/store/deeper"])
def test_import_to_an_out_that_cannot_be_created_fails(runner, images, tmp_path, out):
    (tmp_path / "file.toml").write_text("x")
    before = tree(tmp_path)
    store = tmp_path / out
    result = runner.invoke(main, ["import", str(images), "--out", str(store)])

    assert result.exit_code == 1
    assert result.output == f"Error: cannot create {store}: Not a directory\n"
    assert tree(tmp_path) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_import_to_an_out_under_proc_fails(runner, images):
    result = runner.invoke(main, ["import", str(images), "--out", "/proc/store"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot create /proc/store: No such file or directory\n"
    )


_COLUMNS = "digest, source, is_real, role, original_path, width, height, notes"
_HEADER = _COLUMNS.replace(" ", "") + "\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"a,b\n1,2\n",
            f": existing manifest has columns a, b; expected {_COLUMNS}",
        ),
        (
            None,  # a folder named manifest.csv
            f": is a folder; expected a CSV file with columns {_COLUMNS}",
        ),
        (
            b"digest,source\xff\n",
            ": not UTF-8 text (byte 0xff at offset 13); expected a CSV file with "
            f"columns {_COLUMNS}",
        ),
        (
            b"",
            ": existing manifest is empty; expected a header row with columns "
            f"{_COLUMNS}",
        ),
        (
            (_HEADER + "abc,real,1,main,x.png,32,32,\n").encode(),
            ", line 2: digest: got 'abc'; allowed: 64 lower-case hexadecimal "
            "characters (a SHA-256 digest)",
        ),
        (
            (_HEADER + "a" * 64 + ",real\n").encode(),
            f", line 2: has 2 field(s); expected 8 ({_COLUMNS})",
        ),
    ],
    ids=["columns", "folder", "not UTF-8", "empty", "digest", "fields"],
)
def test_import_into_a_store_with_a_bad_manifest_changes_nothing(
    runner, images, tmp_path, content, message
):
    store = tmp_path / "store"
    store.mkdir()
    manifest = store / "manifest.csv"
    if content is None:
        manifest.mkdir()
    else:
        manifest.write_bytes(content)
    before = tree(store)
    result = runner.invoke(main, ["import", str(images), "--out", str(store)])

    assert result.exit_code == 1
    assert result.output == f"Error: {manifest}{message}\n"
    assert tree(store) == before  # no image stored


def test_inspect(runner, images, tmp_path):
    result = runner.invoke(main, ["inspect", str(images), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"Folder {images}: 5 readable image(s), 1 unreadable"
    )
    assert "Formats: JPEG 2, PNG 3" in result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(main, ["inspect", str(empty)])
    assert nothing.exit_code == 1 and "no image files in" in nothing.output
    missing = runner.invoke(main, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_inspect_fails_when_no_image_is_readable(runner, tmp_path):
    folder = tmp_path / "unreadable"
    folder.mkdir()
    (folder / "a.png").write_text("a text file")
    (folder / "b.png").write_bytes(b"")
    (folder / "c.jpg").write_text("another")
    write(folder / "d.bmp", noise(4), "BMP")

    result = runner.invoke(main, ["inspect", str(folder), "--quiet"])

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Folder {folder}: 0 readable image(s), 4 unreadable, 0 duplicate(s), "
        "0 other file(s) ignored."
    )
    assert f"  {folder / 'a.png'}: not an image" in lines
    assert lines[-1] == (
        f"Error: no readable images in {folder}: all 4 image file(s) are "
        "unreadable (not an image: 2; empty file: 1; unsupported format BMP "
        "(allowed: PNG, JPEG, WebP): 1)"
    )

    # one readable image is enough
    write(folder / "e.png", noise(5))
    one = runner.invoke(main, ["inspect", str(folder), "--quiet"])
    assert one.exit_code == 0, one.output
    assert one.output.startswith(f"Folder {folder}: 1 readable image(s), 4 unreadable")


def test_demo_command(runner, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(main, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Wrote {out / 'study.toml'} and 229 images.",
        f"Load it with: flask --app study_server study load {out / 'study.toml'}",
    ]

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    refused = runner.invoke(main, ["demo", "--out", str(foreign)])
    assert refused.exit_code == 1 and "was not made by build_demo" in refused.output
    assert (foreign / "thesis.tex").read_text() == "keep me"


def test_help_lists_the_commands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("inspect", "import", "demo"):
        assert f"stimuli {command}" in result.output
