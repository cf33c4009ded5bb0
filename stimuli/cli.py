"""The ``stimuli`` command: inspect and import image folders, build the demo.

Everything here works on folders alone, without the study server's database.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import cast

import click

from .importer import ROLES, Role
from .normalize import CROPS, MIN_SIDE, Crop, ImageProblem

_MAX_SIZE = 4096
_FOLDER = click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)


def _check_size(
    ctx: click.Context, param: click.Parameter, value: int | None
) -> int | None:
    """``--size``: 0 or absent keeps the size; otherwise MIN_SIDE..4096 pixels."""
    if value is None or value == 0:
        return None
    if not MIN_SIDE <= value <= _MAX_SIZE:
        raise click.BadParameter(
            f"got {value}; allowed: 0 (keep the size) or {MIN_SIDE} to {_MAX_SIZE} "
            "pixels",
            ctx=ctx,
            param=param,
        )
    return value


def _check_workers(
    ctx: click.Context, param: click.Parameter, value: int | None
) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(
            f"got {value}; allowed: 1 or more", ctx=ctx, param=param
        )
    return value


@click.group()
@click.version_option(package_name="realism-study")
def main() -> None:
    """Prepare stimulus images for realism studies, without a database.

    \b
    stimuli inspect FOLDER             what an import would meet
    stimuli import FOLDER --out STORE  normalise and store by content digest
    stimuli demo --out DIR             write the built-in demo study
    """


@main.command("inspect")
@click.argument("folder", type=_FOLDER)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--workers", type=int, callback=_check_workers, help="Decoding processes."
)
def inspect_command(folder: Path, quiet: bool, workers: int | None) -> None:
    """Describe the images under FOLDER without changing anything.

    Prints images per source folder, sizes, formats, colour modes, files that
    carry metadata, duplicates (equal pixels) and unreadable files. Exits with
    status 1 when FOLDER holds no readable image: no file named like an image,
    or only files that cannot be read (the reasons are printed).
    """
    from .inspect import inspect_folder

    report = inspect_folder(folder, progress=not quiet, workers=workers)
    if not report.files and not report.problems:
        raise click.ClickException(_no_images(folder))
    click.echo(report.render())
    if not report.files:
        raise click.ClickException(_none_readable(folder, report.problems))


@main.command("import")
@click.argument("folder", type=_FOLDER)
@click.option(
    "--out",
    "store_root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Content store folder (created if needed).",
)
@click.option(
    "--size",
    type=int,
    callback=_check_size,
    help=f"Output side in pixels ({MIN_SIDE}-{_MAX_SIZE}); 0 or absent keeps the size.",
)
@click.option(
    "--crop",
    type=click.Choice(CROPS),
    default="center",
    show_default=True,
    help="center: largest centred square; none: keep the aspect ratio.",
)
@click.option(
    "--source",
    help="Source of every image ('real' or a model name); default: the name of "
    "the folder holding each image.",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="main",
    show_default=True,
    help="Role recorded in the manifest.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--workers", type=int, callback=_check_workers, help="Decoding processes."
)
def import_command(
    folder: Path,
    store_root: Path,
    size: int | None,
    crop: str,
    source: str | None,
    role: str,
    quiet: bool,
    workers: int | None,
) -> None:
    """Normalise the images under FOLDER into a content store at --out.

    Every image is decoded, converted to 8-bit sRGB, optionally centre-cropped
    and resized, and written as a metadata-free PNG named by its SHA-256
    digest. STORE/manifest.csv records each image's digest, source, is_real,
    role, original path, size and conversion notes (rows of earlier imports
    into STORE are kept). Skipped files and duplicates are listed.

    Exits with status 0 when at least one image was imported, 1 when none
    could be.
    """
    from .folders import output_folder_for_run
    from .importer import import_folder, read_manifest, write_manifest
    from .normalize import StimulusImportError
    from .store import ContentStore

    folder_abs, store_abs = folder.resolve(), store_root.resolve()
    if store_abs.is_relative_to(folder_abs):
        raise click.BadParameter(
            f"{store_root} lies inside FOLDER {folder}; a later import would read "
            "the stored files as new images. Choose a folder outside it.",
            param_hint="'--out'",
        )
    if source is not None:
        from .importer import check_source_name

        try:
            check_source_name(source)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--source'") from None

    manifest = store_root / "manifest.csv"
    # Checked before any image is stored, so a bad manifest changes nothing.
    try:
        earlier = read_manifest(manifest)
    except StimulusImportError as exc:
        raise click.ClickException(str(exc)) from None
    # a failed import leaves no empty store behind
    with output_folder_for_run(store_root):
        try:
            report = import_folder(
                folder,
                source=source,
                size=size,
                crop=cast(Crop, crop),
                store=ContentStore(store_root),
                progress=not quiet,
                role=cast(Role, role),
                workers=workers,
            )
        except StimulusImportError as exc:
            raise click.ClickException(str(exc)) from None
        if not report.imported and not report.problems and not report.duplicates:
            raise click.ClickException(_no_images(folder))
        for line in report.lines():
            click.echo(line)
        if not report.imported:
            raise click.ClickException(
                f"nothing imported from {folder}: every image file was skipped"
            )
    rows = write_manifest(report, manifest, relative_to=folder, earlier=earlier)
    click.echo(f"Stored in {store_root}; manifest.csv has {rows} row(s).")


@main.command("demo")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo study (new, empty, or an earlier demo).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def demo_command(out_dir: Path, seed: int) -> None:
    """Write the built-in demo study (study.toml and images) to --out.

    Real images are crops of scikit-image's sample photographs; four "models"
    (degrade-1 to degrade-4) are other crops degraded with increasing
    strength. Needs no download.
    """
    from .demo import build_demo

    try:
        study_file = build_demo(out_dir, seed=seed)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    n_images = sum(1 for _ in (out_dir / "images").rglob("*.png"))
    click.echo(f"Wrote {study_file} and {n_images} images.")
    click.echo(f"Load it with: flask --app study_server study load {study_file}")


def _none_readable(folder: Path, problems: list[ImageProblem]) -> str:
    reasons = Counter(problem.reason for problem in problems)
    shown = "; ".join(f"{reason}: {n}" for reason, n in reasons.most_common(3))
    if len(reasons) > 3:
        shown += f"; {len(reasons) - 3} other reason(s)"
    return (
        f"no readable images in {folder}: all {len(problems)} image file(s) are "
        f"unreadable ({shown})"
    )


def _no_images(folder: Path) -> str:
    from .suffixes import ACCEPTED_SUFFIXES

    return (
        f"no image files in {folder} (looked for names ending in "
        f"{', '.join(ACCEPTED_SUFFIXES)}, in all subfolders)"
    )
