"""The built-in demo study: real photographs against graded degradations.

:func:`build_demo` writes a complete study folder without any download: the
real images are 128 x 128 crops of the colour photographs that ship inside
scikit-image (``skimage.data``: astronaut, chelsea, coffee, Hubble deep field,
immunohistochemistry, retina, rocket and the left view of the stereo
motorcycle; the synthetic colour wheel and logo, and every file that needs a
download, are not used). The grid of crops is cut without overlap and crops
that are mostly black (more than 80% of pixels darker than 20) or flat
(standard deviation below 12) are dropped; about 220 remain.

Four "models" are made from other crops (never one shown as a real image) by
degrading them, in this order, with a colour cast, a Gaussian blur, Gaussian
noise and JPEG re-compression:

=========  ========  ==========  ===========  ============  ============
model      strength  blur sigma  noise sigma  JPEG quality  colour cast
=========  ========  ==========  ===========  ============  ============
degrade-1  subtle    0.5 px      2 / 255      90            3%
degrade-2  mild      0.9 px      5 / 255      60            6%
degrade-3  moderate  1.4 px      9 / 255      35            10%
degrade-4  strong    2.2 px      15 / 255     15            16%
=========  ========  ==========  ===========  ============  ============

The colour cast multiplies the red, green and blue channels by
``1 + c cos(theta - 2 pi k / 3)`` (k = 0, 1, 2) with a random hue angle theta
per image, which tints the image while keeping its mean brightness. Stronger
degradations are easier to spot, so the human error rate should fall from
degrade-1 to degrade-4; a study on the demo that does not rank them so points
at a problem in the platform.

The crops are dealt to the roles (real, each model, practice) in proportion
within every source photograph, so no model gets more of, say, the retina
than the real set does. Practice images come from crops used nowhere else;
the attention checks are noise and flat colour blocks that no one would take
for a photograph. Everything is deterministic under ``seed``: the same seed
writes the same bytes.
"""

from __future__ import annotations

import functools
import io
import math
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from .normalize import encode_png

#: Side of every demo image, in pixels.
CROP_SIZE = 128
#: The scikit-image photographs used, by their ``skimage.data`` function.
PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
    "retina", "rocket", "stereo_motorcycle",
)  # fmt: skip
#: Images per role; the real set takes the crops that remain.
PRACTICE_REAL = 4
PRACTICE_GENERATED = 4
CHECKS = 6
MAX_PER_MODEL = 40
MIN_REAL = 60
# A crop is usable when at most this fraction of pixels is dark ...
_MAX_DARK_FRACTION = 0.8
_DARK_LEVEL = 20
# ... and its pixel values are not nearly constant.
_MIN_STD = 12.0
_MARKER = ".stimuli-demo"


@dataclass(frozen=True)
class Degradation:
    """One demo "model": a fixed strength of blur, noise, JPEG and colour cast."""

    name: str
    strength: str
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    colour_cast: float


#: The demo's models, weakest first.
MODELS: tuple[Degradation, ...] = (
    Degradation("degrade-1", "subtle", 0.5, 2.0, 90, 0.03),
    Degradation("degrade-2", "mild", 0.9, 5.0, 60, 0.06),
    Degradation("degrade-3", "moderate", 1.4, 9.0, 35, 0.10),
    Degradation("degrade-4", "strong", 2.2, 15.0, 15, 0.16),
)


@dataclass(frozen=True)
class Crop:
    """A square cut from one photograph: ``photo``, grid row and column."""

    photo: str
    row: int
    col: int
    pixels: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.photo}-r{self.row}c{self.col}"


def _load_photo(name: str) -> np.ndarray:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
        pixels = pixels[0]
    return np.asarray(pixels, dtype=np.uint8)[..., :3]


def usable(pixels: np.ndarray) -> bool:
    """Return whether a crop shows enough to judge (not mostly black, not flat)."""
    dark = (pixels.max(axis=2) < _DARK_LEVEL).mean()
    return bool(dark <= _MAX_DARK_FRACTION and pixels.std() >= _MIN_STD)


def photo_crops(size: int = CROP_SIZE) -> list[Crop]:
    """Cut every photograph of :data:`PHOTOS` into non-overlapping usable crops.

    Parameters
    ----------
    size : int, default 128
        Side of a crop in pixels.

    Returns
    -------
    list of Crop
        In photograph order, then row-major; mostly black and flat crops are
        left out. The pixel arrays are read-only (they are cached).
    """
    return list(_cached_crops(size))


@functools.cache
def _cached_crops(size: int) -> tuple[Crop, ...]:
    # Decoding the photographs is the slowest step of a build; keep the crops
    # for the next build in the same process (tests, a server's demo command).
    crops = []
    for photo in PHOTOS:
        pixels = _load_photo(photo)
        rows, cols = pixels.shape[0] // size, pixels.shape[1] // size
        for row in range(rows):
            for col in range(cols):
                cut = pixels[
                    row * size : (row + 1) * size, col * size : (col + 1) * size
                ]
                if usable(cut):
                    cut = np.array(cut)
                    cut.flags.writeable = False
                    crops.append(Crop(photo, row, col, cut))
    return tuple(crops)


def degrade(
    pixels: np.ndarray, model: Degradation, rng: np.random.Generator
) -> np.ndarray:
    """Apply one demo model's degradation to an RGB image.

    Parameters
    ----------
    pixels : numpy.ndarray
        H x W x 3, uint8.
    model : Degradation
        The strengths.
    rng : numpy.random.Generator
        Draws the hue angle of the colour cast and the noise.

    Returns
    -------
    numpy.ndarray
        H x W x 3, uint8: colour cast, blur, noise, then JPEG re-compression
        at ``model.jpeg_quality`` (Pillow's default 4:2:0 chroma subsampling).
    """
    theta = rng.uniform(0.0, 2.0 * math.pi)
    gains = 1.0 + model.colour_cast * np.cos(theta - 2.0 * math.pi * np.arange(3) / 3)
    image = pixels.astype(np.float32) * gains.astype(np.float32)
    # Blur within each channel only (sigma 0 across channels).
    image = gaussian_filter(image, sigma=(model.blur_sigma, model.blur_sigma, 0.0))
    image += rng.normal(0.0, model.noise_sigma, size=image.shape).astype(np.float32)
    image_u8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image_u8, "RGB").save(buffer, "JPEG", quality=model.jpeg_quality)
    with Image.open(buffer) as jpeg:
        return np.asarray(jpeg.convert("RGB"))


def check_images(rng: np.random.Generator, n: int = CHECKS) -> list[np.ndarray]:
    """Make attention-check images: uniform noise and flat colour blocks, alternating.

    Returns
    -------
    list of numpy.ndarray
        ``n`` images, ``CROP_SIZE`` x ``CROP_SIZE`` x 3, uint8.
    """
    images = []
    for i in range(n):
        if i % 2 == 0:
            image = rng.integers(0, 256, size=(CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
        else:
            blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
            block = CROP_SIZE // 4
            image = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)
        images.append(image)
    return images


def _quotas(n_crops: int) -> dict[str, int]:
    """How many crops each role gets: practice, then models, the rest real."""
    spare = n_crops - PRACTICE_REAL - PRACTICE_GENERATED - MIN_REAL
    per_model = min(MAX_PER_MODEL, spare // len(MODELS))
    n_real = n_crops - PRACTICE_REAL - PRACTICE_GENERATED - per_model * len(MODELS)
    if per_model < 20 or n_real < MIN_REAL:
        raise RuntimeError(
            f"only {n_crops} usable crops in scikit-image's photographs; the demo "
            f"needs at least {PRACTICE_REAL + PRACTICE_GENERATED + MIN_REAL + 80}"
        )
    quotas = {"real": n_real}
    quotas |= {model.name: per_model for model in MODELS}
    quotas |= {"practice-real": PRACTICE_REAL, "practice-generated": PRACTICE_GENERATED}
    return quotas


def assign_roles(crops: list[Crop], rng: np.random.Generator) -> dict[str, list[Crop]]:
    """Deal crops to roles, in proportion within every photograph.

    Crops are shuffled within each photograph, then each in turn goes to the
    role furthest below its proportional share so far, so every photograph is
    spread over the real set, the models and practice like the whole.

    Returns
    -------
    dict
        Role (``real``, a model name, ``practice-real``, ``practice-generated``)
        to its crops.
    """
    quotas = _quotas(len(crops))
    by_photo: dict[str, list[Crop]] = {}
    for crop in crops:
        by_photo.setdefault(crop.photo, []).append(crop)
    ordered = []
    for photo in PHOTOS:
        group = by_photo.get(photo, [])
        ordered += [group[i] for i in rng.permutation(len(group))]

    total = len(ordered)
    given: Counter[str] = Counter()
    roles: dict[str, list[Crop]] = {role: [] for role in quotas}
    for i, crop in enumerate(ordered, start=1):
        role = max(quotas, key=lambda r: quotas[r] * i / total - given[r])
        given[role] += 1
        roles[role].append(crop)
    return roles


def _write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(Image.fromarray(pixels, "RGB")))


def _prepare(out_dir: Path) -> None:
    """Empty ``out_dir`` of an earlier demo build; refuse any other folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / _MARKER).is_file():
            raise FileExistsError(
                f"{out_dir} is not empty and was not made by build_demo; choose an "
                "empty or new folder"
            )
        shutil.rmtree(out_dir / "images", ignore_errors=True)
        (out_dir / "study.toml").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text(
        "Made by stimuli.demo.build_demo; safe to rebuild.\n"
    )


def build_demo(out_dir: Path, *, seed: int = 0) -> Path:
    """Write the demo study: a study file and its images, without any download.

    Parameters
    ----------
    out_dir : pathlib.Path
        The study folder. It must be new, empty, or an earlier demo build
        (which is replaced).
    seed : int, default 0
        Seeds the assignment of crops to roles, the noise, the colour casts
        and the check images.

    Returns
    -------
    pathlib.Path
        ``out_dir / "study.toml"``. Beside it: ``images/real``,
        ``images/generated/degrade-1`` ... ``degrade-4``,
        ``images/practice/{real,generated}`` and ``images/checks/generated``.

    Raises
    ------
    FileExistsError
        When ``out_dir`` holds files that an earlier demo build did not make.
    """
    out_dir = Path(out_dir)
    _prepare(out_dir)
    rng = np.random.default_rng(seed)
    roles = assign_roles(photo_crops(), rng)
    images = out_dir / "images"

    for crop in roles["real"]:
        _write_png(images / "real" / f"{crop.name}.png", crop.pixels)
    for model in MODELS:
        for crop in roles[model.name]:
            degraded = degrade(crop.pixels, model, rng)
            _write_png(images / "generated" / model.name / f"{crop.name}.png", degraded)
    for crop in roles["practice-real"]:
        _write_png(images / "practice" / "real" / f"{crop.name}.png", crop.pixels)
    for i, crop in enumerate(roles["practice-generated"]):
        model = MODELS[i % len(MODELS)]
        degraded = degrade(crop.pixels, model, rng)
        _write_png(
            images / "practice" / "generated" / f"{crop.name}-{model.name}.png",
            degraded,
        )
    for i, pixels in enumerate(check_images(rng)):
        kind = "noise" if i % 2 == 0 else "blocks"
        _write_png(
            images / "checks" / "generated" / f"check-{i + 1}-{kind}.png", pixels
        )

    study_file = out_dir / "study.toml"
    study_file.write_text(study_toml(seed), encoding="utf-8")
    return study_file


def study_toml(seed: int = 0) -> str:
    """Return the demo's study file (see the module docstring for the models)."""
    strengths = "\n".join(
        f"#   {m.name} ({m.strength}): blur sigma {m.blur_sigma} px, noise sigma "
        f"{m.noise_sigma:g}/255, JPEG quality {m.jpeg_quality}, colour cast "
        f"{m.colour_cast:.0%}"
        for m in MODELS
    )
    return _STUDY_TEMPLATE.format(seed=seed, strengths=strengths, size=CROP_SIZE)


_STUDY_TEMPLATE = '''\
# The built-in demo study, written by `stimuli demo` (seed {seed}).
# Real images: 128 x 128 crops of scikit-image's sample photographs.
# "Models": other crops degraded in four steps of increasing strength
# (colour cast, Gaussian blur, Gaussian noise, JPEG re-compression):
{strengths}
# People should find degrade-4 easiest to spot and degrade-1 hardest, so the
# human error rate should fall from degrade-1 to degrade-4.

slug = "demo"
title = "Demo: real photographs or degraded copies?"
dataset = "demo"
design = "between"

[trials]
per_session = 40
real_fraction = 0.5
practice = 6
checks = 3
max_failed_checks = 1
break_every = 20

[timing]
fixation_ms = 500
exposure_ms = 500
mask_ms = 0
staircase = false
resume_limit_minutes = 30
inactive_limit_minutes = 60

[keys]
real = "f"
generated = "j"
counterbalance = true

[recruitment]
platform = "direct"
target_per_model = 5
completion_code = "DEMO-COMPLETE"
screenout_code = "DEMO-SCREENOUT"

[display]
size = {size}
crop = "center"

[texts]
consent = """
This is a demonstration of a study on how people perceive images. You will \
see small images one at a time and decide whether each is an unaltered \
photograph or a computer-made copy. Your answers are stored under a \
pseudonym on this server only. You may stop at any time."""
instructions = """
A cross appears in the middle of the screen, then an image for half a second. \
Then decide: was it a real photograph, or generated by a computer? Answer \
with the keys or the buttons shown on the screen. Go with your first \
impression. The first few images are practice, with feedback."""
debrief = """
Thank you. Half of the main images were crops of photographs that ship with \
the scikit-image library; the other half were crops degraded by blur, noise, \
JPEG compression and a colour cast, at one of four strengths. The demo \
checks that stronger degradations are easier to spot."""

[images]
real = "images/real"
generated = "images/generated"
practice = "images/practice"
checks = "images/checks"
'''
