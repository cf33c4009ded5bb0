"""Opaque, signed stimulus URLs.

A stimulus URL names one trial of one session, never an image: the signed
value is the trial's row id, so the same image has a different URL in every
session and the URL says nothing about the file, its source or its truth.
The signature uses the app's ``SECRET_KEY`` with its own salt (so no other
signed value of the app can be replayed as a stimulus URL) and carries a
timestamp, so a URL stops working ``max_age_s`` after it was issued.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeTimedSerializer

from ..errors import NotFound

SALT = "study_server.stimulus-url.v1"
# A real opaque value is about 30 characters; anything much longer is not one.
MAX_OPAQUE_LENGTH = 200


class StimulusSigner:
    """Sign trial ids into opaque URL parts and read them back."""

    def __init__(self, secret_key: str | bytes, max_age_s: int):
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
        self.max_age_s = max_age_s

    def sign(self, trial_id: int) -> str:
        """Return the opaque URL part for ``trial_id``."""
        return self._serializer.dumps(trial_id)

    def unsign(self, opaque: str) -> int:
        """Return the trial id in ``opaque``.

        Raises
        ------
        NotFound
            The value is not one this app signed, was tampered with, or is
            older than ``max_age_s``.
        """
        if len(opaque) > MAX_OPAQUE_LENGTH:
            raise NotFound("no such image")
        try:
            value = self._serializer.loads(opaque, max_age=self.max_age_s)
        except BadData:
            raise NotFound("no such image (the link is invalid or expired)") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise NotFound("no such image")
        return value
