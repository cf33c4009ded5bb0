"""The built-in demo study: complete, deterministic, and graded by strength."""

from __future__ import annotations

import itertools
import re
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stimuli import demo
from stimuli.demo import MODELS, build_demo, degrade, photo_crops
from stimuli.importer import import_sources, study_image_sources

NAME = re.compile(
    r"^(?P<photo>[a-z_]+)-r(?P<row>\d+)c(?P<col>\d+)(?:-(?P<model>degrade-\d))?$"
)

# The keys of the study file, as the study server's schema names them.
SCHEMA = {
    "slug": None,
    "title": None,
    "dataset": None,
    "design": None,
    "trials": {"per_session", "real_fraction", "practice", "checks",
               "max_failed_checks", "break_every"},
    "timing": {"fixation_ms", "exposure_ms", "mask_ms", "staircase",
               "resume_limit_minutes", "inactive_limit_minutes"},
    "keys": {"real", "generated", "counterbalance"},
    "recruitment": {"platform", "target_per_model", "completion_code",
                    "screenout_code"},
    "display": {"size", "crop"},
    "texts": {"consent", "instructions", "debrief"},
    "images": {"real", "generated", "practice", "checks"},
}  # fmt: skip


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (128, 128))
        return np.asarray(image).astype(np.float64)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo") / "demo", seed=0).parent


@pytest.fixture(scope="module")
def originals() -> dict[tuple[str, int, int], np.ndarray]:
    return {(c.photo, c.row, c.col): c.pixels.astype(np.float64) for c in photo_crops()}


def test_same_seed_same_bytes_other_seed_other_assignment(built, tmp_path):
    target = tmp_path / "demo"
    build_demo(target, seed=1)
    other = files_of(target)
    assert sorted(other) != sorted(files_of(built))
    assert Counter(Path(name).parent for name in other) == Counter(
        Path(name).parent for name in files_of(built)
    )

    # Rebuilding over an earlier demo replaces it: same seed, same bytes.
    build_demo(target, seed=0)
    assert files_of(target) == files_of(built)


def test_study_file_has_exactly_the_schema_keys(built):
    settings = tomllib.loads((built / "study.toml").read_text(encoding="utf-8"))
    assert set(settings) == set(SCHEMA)
    for key, subkeys in SCHEMA.items():
        if subkeys is not None:
            assert set(settings[key]) == subkeys, key
    assert settings["slug"] == "demo" and settings["design"] == "between"
    assert settings["display"] == {"size": 128, "crop": "center"}
    assert settings["trials"]["per_session"] == 40
    for model in MODELS:
        assert (
            f"{model.name} ({model.strength}): blur sigma {model.blur_sigma} px, noise "
            f"sigma {model.noise_sigma:g}/255, JPEG quality {model.jpeg_quality}"
        ) in (built / "study.toml").read_text()


def test_study_server_accepts_the_study_file(built):
    studyfile = pytest.importorskip("study_server.studyfile")
    settings = studyfile.parse_study_file(built / "study.toml")
    assert settings.slug == "demo" and settings.n_real == 20


def test_enough_images_for_a_between_session_without_repeats(built):
    settings = tomllib.loads((built / "study.toml").read_text(encoding="utf-8"))
    trials = settings["trials"]
    sources = study_image_sources(settings["images"], built)
    report = import_sources(sources, size=128, progress=False)

    assert report.problems == [] and report.duplicates == [] and report.converted == []
    counts = report.counts()
    n_real = round(trials["per_session"] * trials["real_fraction"])
    n_generated = trials["per_session"] - n_real
    assert counts[("main", "real")] >= max(60, 3 * n_real)
    for model in MODELS:
        # Room for least-shown balancing: a session uses about half of a model.
        assert counts[("main", model.name)] >= max(38, n_generated + 18)
    practice = sum(n for (role, _), n in counts.items() if role == "practice")
    checks = sum(n for (role, _), n in counts.items() if role == "check")
    assert practice >= trials["practice"] and checks >= 2 * trials["checks"]
    assert counts[("practice", "real")] == counts[("practice", "generated")] == 4
    assert {source for (role, source) in counts if role == "check"} == {"generated"}


def test_no_crop_serves_twice_and_real_images_are_untouched(built, originals):
    names = []
    for path in sorted((built / "images").rglob("*.png")):
        if "checks" in path.parts:
            continue
        match = NAME.match(path.stem)
        assert match, path
        key = (match["photo"], int(match["row"]), int(match["col"]))
        assert key in originals
        names.append(key)
        if path.parent.name == "real":
            assert np.array_equal(pixels(path), originals[key])
    assert len(names) == len(set(names)) == 229 - 6


def test_every_photograph_is_spread_over_all_roles(built):
    photos_per_role = {}
    for folder in ["real", *(f"generated/{m.name}" for m in MODELS)]:
        stems = [p.stem for p in (built / "images" / folder).glob("*.png")]
        photos_per_role[folder] = Counter(NAME.match(s)["photo"] for s in stems)
    for photo in demo.PHOTOS:
        shares = [
            counts[photo] / sum(counts.values()) for counts in photos_per_role.values()
        ]
        # Dealt in proportion: each role's share of a photograph is about equal.
        assert max(shares) - min(shares) < 0.05, (photo, shares)


def test_models_are_graded_by_strength(built, originals):
    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))

    mean_psnr = []
    for model in MODELS:
        values = []
        for path in sorted((built / "images" / "generated" / model.name).glob("*.png")):
            match = NAME.match(path.stem)
            key = (match["photo"], int(match["row"]), int(match["col"]))
            values.append(psnr(pixels(path), originals[key]))
        mean_psnr.append(float(np.mean(values)))
    # Stronger degradation, further from the photograph: PSNR falls strictly.
    assert mean_psnr == sorted(mean_psnr, reverse=True)
    assert all(a - b > 1.0 for a, b in itertools.pairwise(mean_psnr))


def test_degrade_is_seeded_and_changes_the_image():
    crop = photo_crops()[0].pixels
    first = degrade(crop, MODELS[0], np.random.default_rng(7))
    second = degrade(crop, MODELS[0], np.random.default_rng(7))
    assert first.shape == crop.shape and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert not np.array_equal(first, crop)


def test_check_images_are_obviously_generated(built):
    checks = sorted((built / "images" / "checks" / "generated").glob("*.png"))
    assert len(checks) == demo.CHECKS
    for path in checks:
        image = pixels(path)
        colours = len(np.unique(image.reshape(-1, 3), axis=0))
        if "blocks" in path.stem:
            assert colours <= 16  # a 4 x 4 grid of flat colours
        else:
            assert colours > 128 * 128 * 0.9  # uniform noise: nearly all distinct
            assert abs(image.mean() - 127.5) < 3


def test_docstring_table_matches_the_models():
    row = re.compile(
        r"^(degrade-\d)\s+(\w+)\s+([\d.]+) px\s+([\d.]+) / 255\s+(\d+)\s+(\d+)%$",
        re.MULTILINE,
    )
    described = [
        (name, strength, float(blur), float(noise), int(quality), int(cast) / 100)
        for name, strength, blur, noise, quality, cast in row.findall(demo.__doc__)
    ]
    assert described == [
        (m.name, m.strength, m.blur_sigma, m.noise_sigma, m.jpeg_quality, m.colour_cast)
        for m in MODELS
    ]


def test_a_foreign_folder_is_never_replaced(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("keep")
    with pytest.raises(FileExistsError, match="was not made by build_demo"):
        build_demo(foreign)
    assert [p.name for p in foreign.iterdir()] == ["chapter1.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        build_demo(tmp_path / "file")
