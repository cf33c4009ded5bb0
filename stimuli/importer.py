"""Importing folders of images as stimuli.

:func:`import_sources` walks folders of real and generated images, normalises
every image (:func:`stimuli.normalize.normalize_image`), finds duplicates by
content digest and, given a :class:`~stimuli.store.ContentStore`, stores each
image once. It never stops at a bad file: unreadable files are listed in
:attr:`ImportReport.problems` with their reason, and the import goes on.

Where an image comes from (``source``: ``real`` or a model name, ``is_real``,
``role``) is kept in the :class:`ImportReport` and the manifest, for the
database; the stored file's name is its digest only.

A study file's ``[images]`` table names the folders (see
:func:`study_image_sources`)::

    images/real/                  real images (main trials)
    images/generated/<model>/     one subfolder per model, named after it
    images/practice/real/         practice trials (optional)
    images/practice/generated/
    images/checks/generated/      attention checks (optional): images whose
    images/checks/real/           right answer is beyond doubt

Image files are recognised by their name (:mod:`stimuli.suffixes` says which
names, and which of them are imported); other files are listed in
:attr:`ImportReport.ignored`. Hidden files and folders (names starting with
``.``) are skipped. The format itself is read from the bytes, so
a PNG named ``.jpg`` imports and a text file named ``.png`` is reported.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from tqdm import tqdm

from analysis.names import normalize_name

from .normalize import (
    Crop,
    ImageProblem,
    NormalizedImage,
    StimulusImportError,
    check_fit_options,
    normalize_image,
)
from .store import ContentStore, check_digest
from .suffixes import ACCEPTED_SUFFIXES, IMAGE_SUFFIXES

T = TypeVar("T")
Role = Literal["main", "practice", "check"]
ROLES: tuple[str, ...] = get_args(Role)

#: The columns of ``manifest.csv`` written by :func:`write_manifest`.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "digest", "source", "is_real", "role", "original_path", "width", "height", "notes",
)  # fmt: skip
#: The study file's ``[images]`` keys.
IMAGE_KEYS: tuple[str, ...] = ("real", "generated", "practice", "checks")
#: A conversion shared by more images is one summary line in the report.
CONVERTED_LISTED = 5
#: Below this many files, a process pool costs more than it saves.
POOL_MIN_FILES = 48
_MAX_WORKERS = 8
_MAX_SOURCE_LENGTH = 128
_REAL = "real"


@dataclass(frozen=True)
class SourceFolder:
    """A folder of images that share a source, truth and role.

    Parameters
    ----------
    path : pathlib.Path
        The folder.
    source : str or None
        ``real`` or a model name. None: each image's source is the name of the
        folder that directly holds it (``generated/biggan/x.png`` -> ``biggan``;
        a file directly in ``path`` takes ``path``'s name).
    is_real : bool or None, default None
        Whether the images are real photographs; None: ``source == "real"``.
    role : {"main", "practice", "check"}, default "main"
        The kind of trial the images are for.
    recursive : bool, default True
        Whether subfolders are walked too.
    """

    path: Path
    source: str | None
    is_real: bool | None = None
    role: Role = "main"
    recursive: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.role not in ROLES:
            raise ValueError(
                f"role: got {self.role!r}; allowed: {', '.join(map(repr, ROLES))}"
            )
        if self.source is None:
            return
        source = check_source_name(self.source)
        object.__setattr__(self, "source", source)
        if self.is_real is not None and self.is_real != (source == _REAL):
            raise ValueError(
                f"is_real: got {self.is_real} for source {source!r}; a source is "
                "real exactly when it is named 'real'"
            )

    def source_of(self, file: Path) -> str:
        """Return the source of ``file``, an image inside this folder."""
        if self.source is not None:
            return self.source
        return check_source_name(file.parent.name)

    def is_real_of(self, source: str) -> bool:
        """Return whether an image of ``source`` from this folder is real."""
        return source == _REAL if self.is_real is None else self.is_real


@dataclass(frozen=True)
class ImportedImage:
    """One image that was imported (and stored, given a store)."""

    digest: str
    source: str
    is_real: bool
    role: Role
    original_path: str
    width: int
    height: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Duplicate:
    """A file whose normalised image equals that of an earlier file.

    Only the first file (``first_path``) is imported.
    """

    path: str
    digest: str
    first_path: str
    source: str = ""
    first_source: str = ""


@dataclass
class ImportReport:
    """What an import found: images, skipped files, duplicates, ignored files.

    Attributes
    ----------
    imported : list of ImportedImage
        One per distinct image, in import order (sources in the given order,
        sorted paths within each).
    problems : list of ImageProblem
        Files that could not be imported, with the reason.
    duplicates : list of Duplicate
        Files whose normalised image was already imported from another file.
    ignored : list of str
        Files not named like images (``README.txt``, ``manifest.csv``, ...).
    """

    imported: list[ImportedImage] = field(default_factory=list)
    problems: list[ImageProblem] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def converted(self) -> list[ImportedImage]:
        """The imported images whose conversion left notes."""
        return [image for image in self.imported if image.notes]

    def counts(self) -> Counter[tuple[str, str]]:
        """Return the number of imported images per ``(role, source)``."""
        return Counter((image.role, image.source) for image in self.imported)

    def lines(self) -> list[str]:
        """Return a human-readable summary, one line per item."""
        out = [
            f"Imported {len(self.imported)} image(s); {len(self.problems)} skipped, "
            f"{len(self.duplicates)} duplicate(s), {len(self.converted)} converted, "
            f"{len(self.ignored)} non-image file(s) ignored."
        ]
        for (role, source), n in sorted(self.counts().items()):
            out.append(f"  {role:8} {source:32} {n:6d}")
        for problem in self.problems:
            out.append(f"skipped   {problem.path}: {problem.reason}")
        for dup in self.duplicates:
            clash = (
                f" (sources differ: {dup.first_source} and {dup.source})"
                if dup.source != dup.first_source
                else ""
            )
            out.append(f"duplicate {dup.path}: same image as {dup.first_path}{clash}")
        # Many images often share one conversion (a whole folder upscaled):
        # list files only for the rarer ones.
        groups: dict[tuple[str, ...], list[ImportedImage]] = {}
        for image in self.converted:
            groups.setdefault(image.notes, []).append(image)
        for notes, images in groups.items():
            text = "; ".join(notes)
            if len(images) > CONVERTED_LISTED:
                out.append(
                    f"converted {len(images)} images ({images[0].original_path}, "
                    f"...): {text}"
                )
                continue
            out += [f"converted {image.original_path}: {text}" for image in images]
        return out


def check_source_name(name: str) -> str:
    """Return ``name`` as a source name; ``Real``, ``REAL``... become ``real``.

    Raises
    ------
    ValueError
        When the name is empty, longer than 128 characters, or has a path
        separator.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"source: got {name!r}; allowed: a non-empty model name")
    if len(name) > _MAX_SOURCE_LENGTH or "/" in name or "\\" in name:
        raise ValueError(
            f"source: got {name!r}; allowed: at most {_MAX_SOURCE_LENGTH} "
            "characters without '/' or '\\'"
        )
    return _REAL if normalize_name(name) == _REAL else name


def _hidden(name: str) -> bool:
    return name.startswith(".")


def list_image_files(
    folder: Path, *, recursive: bool = True
) -> tuple[list[Path], list[Path]]:
    """List the image files in ``folder``, and the other files.

    Parameters
    ----------
    folder : pathlib.Path
        The folder to walk.
    recursive : bool, default True
        Whether to walk subfolders.

    Returns
    -------
    images : list of pathlib.Path
        Files named like images (:data:`IMAGE_SUFFIXES`), sorted.
    others : list of pathlib.Path
        The remaining visible files, sorted. Hidden files and folders are in
        neither list.
    """
    images: list[Path] = []
    others: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [] if not recursive else [d for d in dirs if not _hidden(d)]
        for name in files:
            if _hidden(name):
                continue
            path = Path(root) / name
            suffix = path.suffix.lower()
            (images if suffix in IMAGE_SUFFIXES else others).append(path)
    return sorted(images), sorted(others)


def _normalize_file(
    path: str, *, size: int | None, crop: Crop
) -> NormalizedImage | str:
    """Read and normalise one file; return the image or the reason it failed."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    try:
        return normalize_image(data, size=size, crop=crop)
    except StimulusImportError as exc:
        return exc.reason
    except Exception as exc:
        # A decoder failure not foreseen above; one odd file must not end the
        # import of thousands, so it is reported like the others.
        return f"unexpected decoder error ({type(exc).__name__}: {exc})"


def _worker_count(workers: int | None, n_files: int) -> int:
    if workers is not None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: got {workers!r}; allowed: a positive integer")
        return workers
    if n_files < POOL_MIN_FILES or not _main_is_importable():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_WORKERS))


def _main_is_importable() -> bool:
    """Whether worker processes can re-import the main program (not from stdin)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _pool_context() -> Any:
    # forkserver (or spawn) rather than fork: fork copies the parent's threads'
    # locks (tqdm's monitor, a web server's), which can deadlock a worker.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context(
        "forkserver" if "forkserver" in methods else "spawn"
    )


def parallel_map(
    func: Callable[[str], T],
    items: Sequence[str],
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "Importing images",
) -> Iterator[T]:
    """Apply ``func`` to each item, in worker processes when there are many.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled for the workers).
    items : sequence of str
        Its arguments, typically file paths.
    workers : int or None, default None
        Worker processes; None: one per CPU (at most 8) when there are at least
        :data:`POOL_MIN_FILES` items, else none (a pool costs about a second
        to start).
    progress : bool, default True
        Show a tqdm progress bar.
    desc : str
        The progress bar's label.

    Yields
    ------
    object
        ``func(item)`` for each item, in order.
    """
    n_workers = _worker_count(workers, len(items))
    done = 0
    with tqdm(total=len(items), desc=desc, unit="image", disable=not progress) as bar:
        if n_workers > 1:
            chunksize = max(1, min(16, len(items) // (n_workers * 8)))
            pool = ProcessPoolExecutor(n_workers, mp_context=_pool_context())
            try:
                for result in pool.map(func, items, chunksize=chunksize):
                    yield result
                    done += 1
                    bar.update()
            except BrokenProcessPool as exc:
                # A worker died (killed for memory, or it could not start, as
                # when the main program came from stdin): finish in-process.
                warnings.warn(
                    f"worker processes failed ({exc}); going on in this process",
                    RuntimeWarning,
                    stacklevel=2,
                )
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        for item in items[done:]:
            yield func(item)
            bar.update()


def normalize_files(
    paths: Sequence[Path],
    *,
    size: int | None = None,
    crop: Crop = "center",
    workers: int | None = None,
    progress: bool = True,
) -> Iterator[NormalizedImage | str]:
    """Normalise files, in parallel when there are many; yield results in order.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        The files.
    size, crop
        As for :func:`stimuli.normalize.normalize_image`.
    workers, progress
        As for :func:`parallel_map`.

    Yields
    ------
    NormalizedImage or str
        For each path in order: the image, or the reason it was skipped.
    """
    check_fit_options(size, crop)
    work = partial(_normalize_file, size=size, crop=crop)
    yield from parallel_map(
        work, [str(path) for path in paths], workers=workers, progress=progress
    )


def import_sources(
    sources: Sequence[SourceFolder],
    *,
    size: int | None = None,
    crop: Crop = "center",
    store: ContentStore | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> ImportReport:
    """Import every image in the given source folders.

    Parameters
    ----------
    sources : sequence of SourceFolder
        The folders, each with its source, truth and role.
    size : int or None, default None
        Output side in pixels (the study's display size); None keeps the size.
    crop : {"center", "none"}, default "center"
        See :func:`stimuli.normalize.normalize_image`.
    store : ContentStore or None, default None
        Where to write the normalised images; None writes nothing (a dry run).
    progress : bool, default True
        Show a progress bar.
    workers : int or None, default None
        Decoding processes; see :func:`normalize_files`.

    Returns
    -------
    ImportReport
        Imported images, skipped files with reasons, duplicates and ignored
        files. Folders are taken in the given order, files in sorted order, so
        the same folders always give the same report.

    Raises
    ------
    StimulusImportError
        When a folder does not exist.
    ValueError
        When ``size``, ``crop`` or ``workers`` is not allowed.
    """
    check_fit_options(size, crop)
    report = ImportReport()
    jobs: list[tuple[Path, SourceFolder]] = []
    for folder in sources:
        if not folder.path.is_dir():
            raise StimulusImportError(f"folder not found: {folder.path}")
        images, others = list_image_files(folder.path, recursive=folder.recursive)
        jobs += [(path, folder) for path in images]
        report.ignored += [str(path) for path in others]

    first_seen: dict[str, tuple[str, str]] = {}
    results = normalize_files(
        [path for path, _ in jobs], size=size, crop=crop, workers=workers,
        progress=progress,
    )  # fmt: skip
    for (path, folder), result in zip(jobs, results, strict=True):
        if isinstance(result, str):
            report.problems.append(ImageProblem(str(path), result))
            continue
        source = folder.source_of(path)
        if result.digest in first_seen:
            first_path, first_source = first_seen[result.digest]
            report.duplicates.append(
                Duplicate(str(path), result.digest, first_path, source, first_source)
            )
            continue
        first_seen[result.digest] = (str(path), source)
        if store is not None:
            store.put(result)
        report.imported.append(
            ImportedImage(
                digest=result.digest,
                source=source,
                is_real=folder.is_real_of(source),
                role=folder.role,
                original_path=str(path),
                width=result.width,
                height=result.height,
                notes=result.notes,
            )
        )
    return report


def import_folder(
    folder: Path | str,
    *,
    source: str | None = None,
    size: int | None = None,
    crop: Crop = "center",
    store: ContentStore | None = None,
    progress: bool = True,
    role: Role = "main",
    workers: int | None = None,
) -> ImportReport:
    """Import every image under one folder.

    Parameters
    ----------
    folder : pathlib.Path or str
        The folder; walked recursively.
    source : str or None, default None
        ``real`` or a model name for all images. None: each image's source is
        the name of the folder that directly holds it, so
        ``realism-bench/imagenet256/biggan/x.png`` is from ``biggan`` and
        ``.../real/y.png`` is real.
    size, crop, store, progress, workers
        As for :func:`import_sources`.
    role : {"main", "practice", "check"}, default "main"
        The role recorded for every image.

    Returns
    -------
    ImportReport
        See :func:`import_sources`.
    """
    return import_sources(
        [SourceFolder(Path(folder), source, None, role)],
        size=size, crop=crop, store=store, progress=progress, workers=workers,
    )  # fmt: skip


class FolderProblems(StimulusImportError):
    """Every problem found with a study's image folders, one per line.

    ``problems`` lists them; the message is the same lines joined.
    """

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _describe(key: str, path: Path) -> str:
    return f"images.{key}: {path}"


def _require_folder(key: str, path: Path, expected: str) -> None:
    if not path.exists():
        raise StimulusImportError(
            f"{_describe(key, path)}: folder not found ({expected})"
        )
    if not path.is_dir():
        raise StimulusImportError(f"{_describe(key, path)}: not a folder ({expected})")


def _require_images(
    key: str, path: Path, expected: str, *, recursive: bool = True
) -> None:
    images, _ = list_image_files(path, recursive=recursive)
    if not images:
        raise StimulusImportError(
            f"{_describe(key, path)}: no image files ({expected}; image files "
            f"end in {', '.join(ACCEPTED_SUFFIXES)})"
        )


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _hidden(p.name))


def _loose_images(key: str, path: Path, expected: str) -> None:
    images, _ = list_image_files(path, recursive=False)
    if images:
        names = ", ".join(p.name for p in images[:3]) + (
            ", ..." if len(images) > 3 else ""
        )
        raise StimulusImportError(
            f"{_describe(key, path)}: image files directly in the folder ({names}); "
            f"{expected}"
        )


def _model_folders(key: str, folder: Path, role: Role) -> list[SourceFolder]:
    """One SourceFolder per model subfolder of a ``generated`` folder."""
    expected = "expected one subfolder per model, named after the model"
    _require_folder(key, folder, expected)
    _loose_images(key, folder, expected)
    models = _subfolders(folder)
    if not models:
        raise StimulusImportError(
            f"{_describe(key, folder)}: no model subfolders ({expected})"
        )
    seen: dict[str, str] = {}
    out = []
    problems: list[str] = []
    for model in models:
        try:
            _check_model(key, folder, model, seen)
        except StimulusImportError as exc:
            problems.append(str(exc))
            continue
        out.append(SourceFolder(model, model.name, False, role))
    if problems:
        raise FolderProblems(problems)
    return out


def _check_model(key: str, folder: Path, model: Path, seen: dict[str, str]) -> None:
    """Refuse one model subfolder; ``seen`` maps the names met so far."""
    if normalize_name(model.name) == _REAL:
        raise StimulusImportError(
            f"{_describe(key, model)}: a model cannot be named {model.name!r}; "
            "'real' is reserved for real images (put them in images.real)"
        )
    name_key = normalize_name(model.name)
    if name_key in seen:
        raise StimulusImportError(
            f"{_describe(key, folder)}: model folders {seen[name_key]!r} and "
            f"{model.name!r} differ only in case or punctuation; model names "
            "are matched ignoring both, so rename one"
        )
    seen[name_key] = model.name
    try:
        check_source_name(model.name)
    except ValueError as exc:
        raise StimulusImportError(f"{_describe(key, model)}: {exc}") from None
    _require_images(key, model, f"expected the images of model {model.name!r}")


def _kind_folders(
    key: str, folder: Path, role: Role, *, both: bool
) -> list[SourceFolder]:
    """SourceFolders for the ``real/`` and ``generated/`` subfolders of ``folder``."""
    expected = (
        "expected subfolders real/ and generated/"
        if both
        else "expected subfolders real/ and/or generated/"
    )
    _require_folder(key, folder, expected)
    _loose_images(key, folder, expected)
    for sub in _subfolders(folder):
        if sub.name not in ("real", "generated"):
            raise StimulusImportError(
                f"{_describe(key, sub)}: unexpected subfolder ({expected})"
            )
    present = [name for name in ("real", "generated") if (folder / name).is_dir()]
    missing = [name for name in ("real", "generated") if name not in present]
    if (both and missing) or not present:
        raise StimulusImportError(
            f"{_describe(key, folder)}: missing subfolder "
            f"{' and '.join(f'{name}/' for name in missing)} ({expected})"
        )

    out = []
    if "real" in present:
        _require_images(key, folder / "real", "expected real images")
        out.append(SourceFolder(folder / "real", _REAL, True, role))
    if "generated" in present:
        generated = folder / "generated"
        _require_images(key, generated, "expected generated images")
        for sub in _subfolders(generated):
            if normalize_name(sub.name) == _REAL:
                raise StimulusImportError(
                    f"{_describe(key, sub)}: a model cannot be named {sub.name!r}; "
                    "'real' is reserved for real images"
                )
        # Images directly in generated/ have the source "generated"; those in
        # a subfolder take the subfolder's name as their model.
        out.append(SourceFolder(generated, None, False, role))
    return out


def _check_separate(folders: dict[str, Path]) -> dict[str, str]:
    """Folders that are equal or nested (an image would serve two roles).

    Returns the problem of each such key, naming the earlier key it clashes with.
    """
    problems: dict[str, str] = {}
    keys = list(folders)
    for i, key in enumerate(keys):
        for other in keys[:i]:
            path, other_path = folders[key], folders[other]
            if path == other_path:
                relation = f"is the same folder as images.{other}"
            elif path.is_relative_to(other_path):
                relation = f"lies inside images.{other} ({other_path})"
            elif other_path.is_relative_to(path):
                relation = f"holds images.{other} ({other_path})"
            else:
                continue
            problems.setdefault(
                key,
                f"{_describe(key, path)}: {relation}; the folders must be separate "
                "so no image serves two roles",
            )
    return problems


def study_image_sources(
    images_table: dict[str, Any], base_dir: Path
) -> list[SourceFolder]:
    """Turn a study file's ``[images]`` table into source folders.

    Parameters
    ----------
    images_table : dict
        The table: ``real`` and ``generated`` (required), ``practice`` and
        ``checks`` (optional; None or missing means none). Paths are relative
        to ``base_dir`` unless absolute.
    base_dir : pathlib.Path
        The study file's folder.

    Returns
    -------
    list of SourceFolder
        ``real`` (role ``main``), one folder per model of ``generated`` (role
        ``main``), then practice ``real/`` and ``generated/`` (role
        ``practice``) and checks ``real/`` and/or ``generated/`` (role
        ``check``). Practice and check images directly in ``generated/`` have
        the source ``generated``; in a subfolder, the subfolder's name.

    Raises
    ------
    FolderProblems
        A :class:`StimulusImportError` listing every problem found, each
        naming the key, the bad path and what is expected: an unknown key, a
        missing folder or subfolder, a folder without images, image files
        outside the model subfolders, a model named ``real``, two model names
        equal up to case and punctuation, or folders nested in one another.
        Each key's folder is checked even when another key's is wrong.
    """
    allowed = ", ".join(IMAGE_KEYS)
    problems = [
        f"images.{key}: unknown key; allowed keys: {allowed}"
        for key in sorted(set(images_table) - set(IMAGE_KEYS))
    ]
    folders: dict[str, Path] = {}
    for key in IMAGE_KEYS:
        value = images_table.get(key)
        if value is None:
            if key in ("real", "generated"):
                problems.append(f"images.{key}: required key is missing")
        elif not isinstance(value, str | os.PathLike) or not str(value).strip():
            problems.append(
                f"images.{key}: got {value!r}; allowed: a folder path relative to "
                "the study file"
            )
        else:
            folders[key] = (Path(base_dir) / value).resolve()

    clashes = _check_separate(folders)
    sources: list[SourceFolder] = []
    for key, path in folders.items():
        # A folder inside another is reported as that alone: its own layout
        # problems would only repeat it.
        if key in clashes:
            problems.append(clashes[key])
            continue
        try:
            sources += _FOLDER_CHECKS[key](key, path)
        except FolderProblems as exc:
            problems += exc.problems
        except StimulusImportError as exc:
            problems.append(str(exc))
    if problems:
        raise FolderProblems(problems)
    return sources


def _real_folder(key: str, path: Path) -> list[SourceFolder]:
    _require_folder(key, path, "expected a folder of real images")
    _require_images(key, path, "expected real images")
    return [SourceFolder(path, _REAL, True, "main")]


_FOLDER_CHECKS: dict[str, Callable[[str, Path], list[SourceFolder]]] = {
    "real": _real_folder,
    "generated": partial(_model_folders, role="main"),
    "practice": partial(_kind_folders, role="practice", both=True),
    "checks": partial(_kind_folders, role="check", both=False),
}


def _manifest_row(image: ImportedImage, relative_to: Path | None) -> dict[str, str]:
    path = Path(image.original_path)
    if relative_to is not None and path.is_relative_to(relative_to):
        path = path.relative_to(relative_to)
    return {
        "digest": image.digest,
        "source": image.source,
        "is_real": "1" if image.is_real else "0",
        "role": image.role,
        "original_path": path.as_posix(),
        "width": str(image.width),
        "height": str(image.height),
        "notes": "; ".join(image.notes),
    }


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Read a store's ``manifest.csv``, checking it before anything is stored.

    Parameters
    ----------
    path : pathlib.Path
        The CSV file written by :func:`write_manifest`.

    Returns
    -------
    dict of str to dict
        Each row (column name to value) by its digest, in file order; empty
        when the file does not exist yet.

    Raises
    ------
    StimulusImportError
        When the file cannot be read, is not UTF-8 text or not CSV, has other
        columns than :data:`MANIFEST_COLUMNS`, or a row with another number of
        fields or a digest that is not a SHA-256 digest. The message starts
        with the file's path.
    """
    expected = f"expected a CSV file with columns {', '.join(MANIFEST_COLUMNS)}"
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise StimulusImportError(f"{path}: is {what}; {expected}")
        # utf-8-sig: a spreadsheet program may have added a byte-order mark
        text = path.read_bytes().decode("utf-8-sig")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise StimulusImportError(
            f"{path}: cannot be read ({exc.strerror or exc})"
        ) from None
    except UnicodeDecodeError as exc:
        raise StimulusImportError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); {expected}"
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _manifest_rows(path, reader)
    except csv.Error as exc:
        raise StimulusImportError(
            f"{path}, line {reader.line_num}: not CSV ({exc}); {expected}"
        ) from None


def _manifest_rows(path: Path, reader: Any) -> dict[str, dict[str, str]]:
    header = next(reader, None)
    if not header:
        raise StimulusImportError(
            f"{path}: existing manifest is empty; expected a header row with "
            f"columns {', '.join(MANIFEST_COLUMNS)}"
        )
    if tuple(header) != MANIFEST_COLUMNS:
        raise StimulusImportError(
            f"{path}: existing manifest has columns {', '.join(header)}; "
            f"expected {', '.join(MANIFEST_COLUMNS)}"
        )

    rows: dict[str, dict[str, str]] = {}
    for fields in reader:
        if not fields:  # a blank line, as csv.DictReader skips
            continue
        where = f"{path}, line {reader.line_num}"
        if len(fields) != len(MANIFEST_COLUMNS):
            raise StimulusImportError(
                f"{where}: has {len(fields)} field(s); expected "
                f"{len(MANIFEST_COLUMNS)} ({', '.join(MANIFEST_COLUMNS)})"
            )
        try:
            check_digest(fields[0])
        except ValueError as exc:
            raise StimulusImportError(f"{where}: {exc}") from None
        rows[fields[0]] = dict(zip(MANIFEST_COLUMNS, fields, strict=True))
    return rows


def write_manifest(
    report: ImportReport,
    path: Path,
    *,
    relative_to: Path | None = None,
    earlier: dict[str, dict[str, str]] | None = None,
) -> int:
    """Write or update ``manifest.csv`` for the images of an import.

    Rows of earlier imports into the same store are kept; an image imported
    again (same digest) gets this import's row.

    Parameters
    ----------
    report : ImportReport
        The import.
    path : pathlib.Path
        The CSV file; columns :data:`MANIFEST_COLUMNS`, ``is_real`` as 1/0,
        ``notes`` joined by ``"; "``.
    relative_to : pathlib.Path or None
        Write ``original_path`` relative to this folder where possible.
    earlier : dict or None, default None
        The rows already in ``path``, as :func:`read_manifest` returned them
        before the import; None reads them now.

    Returns
    -------
    int
        The number of rows in the file.

    Raises
    ------
    StimulusImportError
        When the existing file is not a manifest (see :func:`read_manifest`).
    """
    rows = dict(read_manifest(path) if earlier is None else earlier)
    for image in report.imported:
        rows[image.digest] = _manifest_row(image, relative_to)

    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows.values())
    os.replace(temporary, path)
    return len(rows)
