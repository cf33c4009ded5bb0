"""Subcommands of the ``analysis`` command, one module each."""

from __future__ import annotations

from pathlib import Path

import click


def output_folder(out: str | Path) -> Path:
    """Create a command's ``--out`` folder, or stop with one line naming it.

    Commands call this before their work, so an impossible folder (under a
    file, on a read-only file system) is refused at once, not after a long
    computation.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"cannot create {out}: {reason}") from None
    return out
