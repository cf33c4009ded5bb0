"""Prepare the instance folder: ``python -m study_server.instance``.

Writes ``instance/config.py`` with a random ``SECRET_KEY`` when the file does
not exist yet, so the server can start outside debug mode. An existing file is
never changed.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def default_instance_path() -> Path:
    """The instance folder ``create_app`` uses (``STUDY_INSTANCE_PATH`` or Flask's)."""
    configured = os.environ.get("STUDY_INSTANCE_PATH")
    if configured:
        return Path(configured)
    from flask.sansio.scaffold import find_package

    # Flask's own rule: beside the package in a checkout, under the prefix
    # when installed.
    prefix, package_path = find_package("study_server")
    if prefix is None:
        return Path(package_path) / "instance"
    return Path(prefix) / "var" / "study_server-instance"


def ensure_secret_key(instance_path: Path) -> bool:
    """Write a random SECRET_KEY to ``config.py``; return whether a file was written."""
    config_file = instance_path / "config.py"
    if config_file.exists():
        return False
    instance_path.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        "# Written by `python -m study_server.instance`; keep this file private.\n"
        f"SECRET_KEY = {secrets.token_hex(32)!r}\n",
        encoding="utf-8",
    )
    config_file.chmod(0o600)
    return True


def main() -> int:
    path = default_instance_path()
    if ensure_secret_key(path):
        sys.stdout.write(f"Wrote a new random SECRET_KEY to {path / 'config.py'}\n")
    else:
        sys.stdout.write(f"{path / 'config.py'} exists; left as it is.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
