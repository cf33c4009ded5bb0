"""A content-addressed folder of normalised stimulus images.

Each image is stored once, under its SHA-256 digest:
``<root>/<digest[:2]>/<digest>.png``. The two-character fan-out keeps folders
small for large stimulus sets. Writes are atomic (a temporary file in the same
folder, then ``os.replace``), so a reader, for instance the study server
sending an image to a participant, never sees a half-written file, and a crash
leaves either the whole image or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .normalize import NormalizedImage

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Stored files are read by the web server, which may run as another user.
_FILE_MODE = 0o644


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a SHA-256 hex digest; raise ValueError if not.

    Parameters
    ----------
    digest : str
        64 lower-case hexadecimal characters.

    Returns
    -------
    str
        The same digest.
    """
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValueError(
            f"digest: got {digest!r}; allowed: 64 lower-case hexadecimal characters "
            "(a SHA-256 digest)"
        )
    return digest


class ContentStore:
    """Normalised images stored by content digest under one folder.

    Parameters
    ----------
    root : pathlib.Path
        The store's folder; created on the first :meth:`put`.

    Examples
    --------
    >>> store = ContentStore(Path("instance/stimuli"))  # doctest: +SKIP
    >>> path = store.put(normalize_image(data))  # doctest: +SKIP
    >>> store.open(path.stem) == data  # doctest: +SKIP
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ContentStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Return where the image with ``digest`` is (or would be) stored."""
        check_digest(digest)
        return self.root / digest[:2] / f"{digest}.png"

    def has(self, digest: str) -> bool:
        """Return whether the image with ``digest`` is stored."""
        return self.path(digest).is_file()

    def open(self, digest: str) -> bytes:
        """Return the stored PNG bytes of ``digest``.

        Raises
        ------
        FileNotFoundError
            When no image with that digest is stored.
        """
        path = self.path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no image with digest {digest} in the store at {self.root}"
            ) from None

    def put(self, image: NormalizedImage) -> Path:
        """Store ``image`` under its digest and return the file's path.

        Idempotent: an image already stored is left as it is. The bytes are
        checked against the digest first, so a mislabelled image can never
        enter the store.

        Parameters
        ----------
        image : NormalizedImage
            The output of :func:`stimuli.normalize.normalize_image`.

        Returns
        -------
        pathlib.Path
            ``<root>/<digest[:2]>/<digest>.png``.

        Raises
        ------
        ValueError
            When ``image.digest`` is not the SHA-256 of ``image.data``.
        """
        target = self.path(image.digest)
        actual = hashlib.sha256(image.data).hexdigest()
        if actual != image.digest:
            raise ValueError(
                f"image digest {image.digest} does not match its data (sha256 "
                f"{actual}); the image was changed after normalisation"
            )
        if target.is_file():
            return target

        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{image.digest[:8]}-", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(image.data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, _FILE_MODE)
            # Atomic on POSIX and Windows: readers see the old state or the
            # whole file; two writers of the same digest write equal bytes.
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return target

    def digests(self) -> Iterator[str]:
        """Yield the digests of all stored images, in sorted order."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.png")):
                if _DIGEST.match(file.stem) and file.stem.startswith(folder.name):
                    yield file.stem

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            return False
        return self.has(digest)
