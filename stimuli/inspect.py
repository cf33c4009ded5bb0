"""Looking at a folder of images before importing it.

:func:`inspect_folder` reads every image under a folder, without writing
anything, and reports what an import would meet: images per source folder,
sizes, formats, colour modes, files carrying metadata (EXIF, ICC profiles,
text chunks...), images with identical pixels, and files that cannot be read.
:meth:`InspectReport.render` gives the text that ``stimuli inspect`` prints.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .importer import Duplicate, list_image_files, parallel_map
from .normalize import ImageProblem, StimulusImportError, decode_image, metadata_kinds

#: How many entries of a long list the text rendering shows.
RENDER_LIMIT = 20


@dataclass(frozen=True)
class InspectedFile:
    """One readable image file.

    Attributes
    ----------
    path : str
        The file.
    source : str
        The folder holding it, relative to the inspected folder (``.`` for the
        folder itself), in ``/`` form.
    format, mode : str
        Pillow's format (``PNG``, ``JPEG``, ``WEBP``) and colour mode.
    width, height : int
        Size in pixels, after EXIF orientation.
    metadata : tuple of str
        Metadata the file carries (see
        :func:`stimuli.normalize.metadata_kinds`).
    pixel_digest : str
        SHA-256 of the size and the 8-bit sRGB pixels; equal for files that
        would import as the same image (before cropping and resizing).
    """

    path: str
    source: str
    format: str
    mode: str
    width: int
    height: int
    metadata: tuple[str, ...]
    pixel_digest: str


@dataclass
class InspectReport:
    """What :func:`inspect_folder` found."""

    folder: str
    files: list[InspectedFile] = field(default_factory=list)
    problems: list[ImageProblem] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def counts_by_source(self) -> Counter[str]:
        """Return the number of readable images per source folder."""
        return Counter(file.source for file in self.files)

    def sizes(self) -> Counter[tuple[int, int]]:
        """Return the number of images per ``(width, height)``."""
        return Counter((file.width, file.height) for file in self.files)

    def formats(self) -> Counter[str]:
        """Return the number of images per file format."""
        return Counter(file.format for file in self.files)

    def modes(self) -> Counter[str]:
        """Return the number of images per colour mode."""
        return Counter(file.mode for file in self.files)

    def with_metadata(self) -> list[InspectedFile]:
        """Return the images that carry metadata."""
        return [file for file in self.files if file.metadata]

    def render(self) -> str:
        """Return the report as text for a terminal."""
        lines = [
            f"Folder {self.folder}: {len(self.files)} readable image(s), "
            f"{len(self.problems)} unreadable, {len(self.duplicates)} duplicate(s), "
            f"{len(self.ignored)} other file(s) ignored."
        ]
        if self.files:
            lines += self._render_counts()
        lines += self._render_lists()
        return "\n".join(lines)

    def _render_counts(self) -> list[str]:
        lines = ["", "Images per source folder:"]
        for source, n in sorted(self.counts_by_source().items()):
            lines.append(f"  {source:40} {n:7d}")
        shorter = [min(file.width, file.height) for file in self.files]
        lines += [
            "",
            f"Shorter side (px): min {min(shorter)}, median "
            f"{statistics.median(shorter):g}, max {max(shorter)}",
            "Sizes (width x height):",
        ]
        for (width, height), n in self.sizes().most_common(RENDER_LIMIT // 2):
            lines.append(f"  {f'{width}x{height}':40} {n:7d}")
        if len(self.sizes()) > RENDER_LIMIT // 2:
            lines.append(f"  ... {len(self.sizes()) - RENDER_LIMIT // 2} more size(s)")
        lines.append(
            "Formats: "
            + ", ".join(f"{k} {n}" for k, n in sorted(self.formats().items()))
        )
        lines.append(
            "Colour modes: "
            + ", ".join(f"{k} {n}" for k, n in sorted(self.modes().items()))
        )
        kinds = Counter(kind for file in self.files for kind in file.metadata)
        lines.append(
            "Metadata: "
            + (
                ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                + f" (in {len(self.with_metadata())} file(s); removed on import)"
                if kinds
                else "none"
            )
        )
        return lines

    def _render_lists(self) -> list[str]:
        sections = [
            (
                "Files with metadata",
                [f"{f.path}: {', '.join(f.metadata)}" for f in self.with_metadata()],
            ),
            (
                "Duplicates (same pixels; only the first would be imported)",
                [f"{d.path}: same as {d.first_path}" for d in self.duplicates],
            ),
            ("Unreadable files", [f"{p.path}: {p.reason}" for p in self.problems]),
            ("Ignored (not named like images)", self.ignored),
        ]
        lines = []
        for title, items in sections:
            if not items:
                continue
            lines += ["", f"{title}:"]
            lines += [f"  {item}" for item in items[:RENDER_LIMIT]]
            if len(items) > RENDER_LIMIT:
                lines.append(f"  ... {len(items) - RENDER_LIMIT} more")
        return lines


def _inspect_file(path: str) -> tuple[str, str, int, int, tuple[str, ...], str] | str:
    """Read one file; return its description or the reason it is unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    try:
        decoded = decode_image(data)
    except StimulusImportError as exc:
        return exc.reason
    except Exception as exc:
        # Reported like any unreadable file; see importer._normalize_file.
        return f"unexpected decoder error ({type(exc).__name__}: {exc})"
    image = decoded.image
    digest = hashlib.sha256(
        f"{image.width}x{image.height}:".encode() + image.tobytes()
    ).hexdigest()
    return (
        decoded.original_format,
        decoded.original_mode,
        image.width,
        image.height,
        metadata_kinds(data),
        digest,
    )


def inspect_folder(
    folder: Path | str, *, progress: bool = True, workers: int | None = None
) -> InspectReport:
    """Describe the images under a folder without importing them.

    Parameters
    ----------
    folder : pathlib.Path or str
        The folder; walked recursively, hidden files and folders skipped.
    progress : bool, default True
        Show a progress bar.
    workers : int or None, default None
        Decoding processes; see :func:`stimuli.importer.normalize_files`.

    Returns
    -------
    InspectReport
        Readable images with format, mode, size, metadata and pixel digest;
        duplicates (equal pixels); unreadable files with the reason; files not
        named like images.

    Raises
    ------
    StimulusImportError
        When ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StimulusImportError(f"folder not found: {folder}")
    images, others = list_image_files(folder)
    report = InspectReport(str(folder), ignored=[str(path) for path in others])
    first_seen: dict[str, InspectedFile] = {}
    results = parallel_map(
        _inspect_file,
        [str(path) for path in images],
        workers=workers,
        progress=progress,
        desc="Inspecting images",
    )
    for path, result in zip(images, results, strict=True):
        if isinstance(result, str):
            report.problems.append(ImageProblem(str(path), result))
            continue
        source = path.parent.relative_to(folder).as_posix()
        file = InspectedFile(str(path), source, *result)
        report.files.append(file)
        first = first_seen.setdefault(file.pixel_digest, file)
        if first is not file:
            report.duplicates.append(
                Duplicate(
                    file.path, file.pixel_digest, first.path, source, first.source
                )
            )
    return report
