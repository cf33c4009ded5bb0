"""Image folders as ``analysis metrics`` reads them: which files, and shards.

Nothing here imports torch, so a folder can be checked (and ``--shard``
parsed) before the metrics extra is needed to build an encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stimuli.suffixes import METRIC_SUFFIXES

#: Image file names read from a folder: stimuli's, plus BMP and TIFF (the
#: reason is given in :mod:`stimuli.suffixes`, the one definition).
IMAGE_EXTENSIONS = METRIC_SUFFIXES


def list_images(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (recursively), as sorted relative paths.

    Hidden files and folders (names starting with ``.``, such as macOS's
    ``._name.png`` resource forks) are skipped, as ``stimuli`` skips them.

    Raises
    ------
    ValueError
        If ``folder`` is not a readable folder or holds no image files (the
        accepted extensions are named).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    try:
        relatives = (p.relative_to(root) for p in root.rglob("*"))
        found = [
            relative.as_posix()
            for relative in relatives
            if relative.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in relative.parts)
            and (root / relative).is_file()
        ]
    except OSError as error:
        raise ValueError(f"cannot read folder {root}: {error}") from error
    if not found:
        raise ValueError(
            f"folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return sorted(found)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n) into ``(i, n)``.

    Raises
    ------
    ValueError
        For anything else, with the expected form.
    """
    try:
        i_text, n_text = text.split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4); got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard i/n needs 0 <= i < n; got {text!r}")
    return index, count


def shard_paths(paths: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """The contiguous part of ``paths`` that shard ``(i, n)`` handles.

    Parts differ in length by at most one, as ``numpy.array_split``.
    """
    index, count = shard
    base, extra = divmod(len(paths), count)
    start = index * base + min(index, extra)
    stop = start + base + (1 if index < extra else 0)
    return list(paths[start:stop])
