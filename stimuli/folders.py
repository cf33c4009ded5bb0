"""Output folders of the command-line tools (stimuli, analysis, flask export).

One rule for every ``--out``: a folder that cannot be created is refused in
one line naming it, before any work; a folder made for a run that then fails
is removed again while it is still empty, so bad input leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click


def output_folder(out: str | Path) -> list[Path]:
    """Create a command's ``--out`` folder, or stop with one line naming it.

    Returns the folders this call created, innermost first (none when
    ``out`` existed).
    """
    out = Path(out)
    created = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        created.append(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"cannot create {out}: {reason}") from None
    return created


@contextmanager
def output_folder_for_run(out: str | Path) -> Iterator[Path]:
    """:func:`output_folder` before a command's work, undone if the work fails.

    An impossible folder (under a file, on a read-only file system) is
    refused at once instead of after a long computation; when the work then
    fails before writing anything, the folders made for it are removed, so
    bad input leaves nothing behind.
    """
    created = output_folder(out)
    try:
        yield Path(out)
    except BaseException:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
