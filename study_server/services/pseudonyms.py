"""Pseudonymous participant ids for exports.

A participant's platform id (a Prolific PID, an MTurk worker id) identifies a
person, so exports replace it by a keyed hash::

    pseudonym = hex(HMAC-SHA256(key, "<platform>:<external_id>"))[:16]

The key is ``PSEUDONYM_KEY`` from the configuration, or ``SECRET_KEY`` when that
is not set. The same participant gets the same pseudonym in every study and
every export of one deployment (so people who took two studies can be found),
and nobody without the key can compute a pseudonym from a platform id, which a
plain hash would allow. Changing the key changes every pseudonym: set
``PSEUDONYM_KEY`` explicitly when exports from different times must agree.

16 hexadecimal digits are 64 bits; among a million participants the chance
that two share a pseudonym is about 3e-8 (birthday bound n^2 / 2^65).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

#: Hexadecimal digits kept from the HMAC-SHA256 digest.
PSEUDONYM_LENGTH = 16


def pseudonym_key(config: Mapping[str, Any]) -> bytes:
    """Return the key for pseudonyms: ``PSEUDONYM_KEY``, else ``SECRET_KEY``.

    Raises
    ------
    ValueError
        Neither key is set.
    """
    key = config.get("PSEUDONYM_KEY") or config.get("SECRET_KEY")
    if not key:
        raise ValueError(
            "no key for pseudonyms: set PSEUDONYM_KEY (or SECRET_KEY) in the "
            "configuration, or export with platform ids included"
        )
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def pseudonym(key: bytes, platform: str, external_id: str) -> str:
    """Return the pseudonym of the participant ``external_id`` on ``platform``."""
    message = f"{platform}:{external_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]


class Pseudonymizer:
    """Map (platform, external id) to what an export shows, with a cache.

    With ``key=None`` platform ids are shown as they are (the explicit
    ``--include-platform-ids`` choice).
    """

    def __init__(self, key: bytes | None):
        self.key = key
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def includes_platform_ids(self) -> bool:
        return self.key is None

    def __call__(self, platform: str, external_id: str) -> str:
        if self.key is None:
            return external_id
        found = self._cache.get((platform, external_id))
        if found is None:
            found = pseudonym(self.key, platform, external_id)
            self._cache[(platform, external_id)] = found
        return found
