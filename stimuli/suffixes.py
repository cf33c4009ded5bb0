"""Which file names are read as images: the one definition for the whole project.

Stimuli (``stimuli inspect``, ``stimuli import``, a study file's
``[images]`` folders) and ``analysis metrics`` choose image files by name
with these tuples; the format itself is then read from the bytes.

:data:`ACCEPTED_SUFFIXES`
    PNG, JPEG and WebP names: the formats every participant's browser shows,
    so the only ones a study serves (see :mod:`stimuli.normalize`).
:data:`METRIC_SUFFIXES`
    Those plus BMP and TIFF. ``analysis metrics`` decodes images only to
    compute features and never shows them, and the real images it compares
    against often come from datasets stored losslessly as ``.bmp`` or
    ``.tif``; refusing them there would force a lossy or needless conversion.
:data:`IMAGE_SUFFIXES`
    Every name stimuli treat as an image file: the accepted ones, and others
    that are read only so their refusal is reported instead of the file
    being silently ignored. It holds every metric suffix, so a ``.bmp`` that
    metrics read is reported by ``stimuli inspect`` as an unsupported format.
"""

from __future__ import annotations

#: File names that stimuli import as images.
ACCEPTED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp")
#: File names that ``analysis metrics`` reads from image folders.
METRIC_SUFFIXES: tuple[str, ...] = (*ACCEPTED_SUFFIXES, ".bmp", ".tif", ".tiff")
#: Image file names that stimuli read so their refusal is reported (not ignored).
IMAGE_SUFFIXES: tuple[str, ...] = (
    *ACCEPTED_SUFFIXES,
    ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jp2",
    ".j2k", ".ico", ".psd", ".qoi", ".svg", ".dng", ".cr2", ".nef", ".arw",
)  # fmt: skip
