"""Matching dataset and model names across data sources.

Human data and metric tables spell the same model differently (``PFGMPP`` and
``PFGM++``, ``ct2`` and ``Consistency``). Names are first compared after
:func:`normalize_name` (case and punctuation ignored); what that cannot settle
comes from an alias file. Nothing is dropped silently: every name that finds no
partner is returned so the caller can report it.

Alias file
----------
A CSV file with the columns ``kind``, ``name``, ``alias`` and, optionally,
``dataset``::

    kind,dataset,name,alias
    dataset,,lsun256,LSUN-Bedroom
    model,cifar10,PFGMPP,PFGM++
    model,lsun256,ct2,Consistency

``kind`` is ``dataset`` or ``model``; ``name`` is the spelling to report
(usually the human data's), ``alias`` another spelling of the same thing.
``dataset`` restricts a model alias to one dataset and may be left empty.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ALIAS_COLUMNS = ("kind", "name", "alias")
ALIAS_KINDS = ("dataset", "model")

_NOT_ALNUM = re.compile(r"[\W_]+", flags=re.UNICODE)


def normalize_name(name: str) -> str:
    """Return the comparison key of a name: case-folded, without punctuation.

    Parameters
    ----------
    name : str
        A dataset or model name as written in some source.

    Returns
    -------
    str
        The name in NFKC form, case-folded, with every character that is not
        a letter or digit removed.

    Examples
    --------
    >>> normalize_name("StyleGAN2-ada")
    'stylegan2ada'
    >>> normalize_name(" DiT_XL/2 ")
    'ditxl2'
    """
    folded = unicodedata.normalize("NFKC", str(name)).casefold()
    return _NOT_ALNUM.sub("", folded)


class NameMatchError(ValueError):
    """A name table is malformed or two names collide after normalisation."""


@dataclass
class Aliases:
    """Alias spellings of dataset and model names, read from an alias file.

    ``datasets`` maps a normalised alias to a normalised canonical dataset
    name. ``models`` maps ``(dataset key, normalised alias)`` to a normalised
    canonical model name; the dataset key ``""`` holds aliases valid for every
    dataset.
    """

    datasets: dict[str, str] = field(default_factory=dict)
    models: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path | None) -> Aliases:
        """Read an alias CSV; ``None`` gives an empty table.

        Raises
        ------
        NameMatchError
            If a column is missing, a ``kind`` is not ``dataset`` or
            ``model``, a cell is empty, or one alias points to two names.
        """
        aliases = cls()
        if path is None:
            return aliases
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise NameMatchError(f"cannot read alias file {path}: {exc}") from exc
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in ALIAS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise NameMatchError(
                f"alias file {path} lacks the column(s) {', '.join(missing)}; "
                f"required: {', '.join(ALIAS_COLUMNS)} (optional: dataset)"
            )
        for line, row in enumerate(reader, start=2):
            aliases._add_row(row, f"{path}:{line}")
        return aliases

    def _add_row(self, row: dict[str, str | None], where: str) -> None:
        kind = (row.get("kind") or "").strip().lower()
        name = (row.get("name") or "").strip()
        alias = (row.get("alias") or "").strip()
        dataset = (row.get("dataset") or "").strip()
        if kind not in ALIAS_KINDS:
            raise NameMatchError(
                f"{where}: kind {kind!r} is not allowed; use one of "
                f"{', '.join(ALIAS_KINDS)}"
            )
        if not name or not alias:
            raise NameMatchError(f"{where}: both 'name' and 'alias' must be filled in")
        if kind == "dataset":
            _put(self.datasets, normalize_name(alias), normalize_name(name), where)
        else:
            key = (self.dataset_key(dataset) if dataset else "", normalize_name(alias))
            _put(self.models, key, normalize_name(name), where)

    def dataset_key(self, name: str) -> str:
        """Return the comparison key of a dataset name, aliases applied."""
        key = normalize_name(name)
        return self.datasets.get(key, key)

    def model_key(self, name: str, dataset: str | None = None) -> str:
        """Return the comparison key of a model name within a dataset."""
        key = normalize_name(name)
        if dataset is not None:
            scoped = self.models.get((self.dataset_key(dataset), key))
            if scoped is not None:
                return scoped
        return self.models.get(("", key), key)


def _put(table: dict, key, value: str, where: str) -> None:
    if table.get(key, value) != value:
        raise NameMatchError(
            f"{where}: alias {key!r} already points to {table[key]!r}, "
            f"cannot also point to {value!r}"
        )
    table[key] = value


@dataclass
class Matching:
    """The result of matching two lists of names.

    ``pairs`` holds ``(left, right)`` in the order of the left list;
    ``unmatched_left`` and ``unmatched_right`` the names without a partner.
    """

    pairs: list[tuple[str, str]]
    unmatched_left: list[str]
    unmatched_right: list[str]

    def describe(self, left: str = "left", right: str = "right") -> str:
        """Return a human-readable summary naming every unmatched name."""
        parts = [f"{len(self.pairs)} matched"]
        if self.unmatched_left:
            parts.append(f"only in {left}: {', '.join(self.unmatched_left)}")
        if self.unmatched_right:
            parts.append(f"only in {right}: {', '.join(self.unmatched_right)}")
        return "; ".join(parts)


def _keyed(names: Iterable[str], key_of, side: str) -> dict[str, str]:
    keyed: dict[str, str] = {}
    for name in dict.fromkeys(str(n) for n in names):
        key = key_of(name)
        if key in keyed:
            raise NameMatchError(
                f"{side} names {keyed[key]!r} and {name!r} are the same after "
                "ignoring case, punctuation and aliases; rename one of them"
            )
        keyed[key] = name
    return keyed


def match_names(
    left: Iterable[str],
    right: Iterable[str],
    aliases: Aliases | None = None,
    *,
    kind: str = "model",
    dataset: str | None = None,
) -> Matching:
    """Pair names from two sources that denote the same dataset or model.

    Parameters
    ----------
    left, right : iterable of str
        Names from the two sources; repeats are ignored.
    aliases : Aliases, optional
        Extra spellings from an alias file.
    kind : {'model', 'dataset'}
        What the names denote.
    dataset : str, optional
        For models: the dataset they belong to, which selects dataset-scoped
        aliases.

    Returns
    -------
    Matching
        Pairs in the order of ``left`` and the unmatched names of each side.

    Raises
    ------
    NameMatchError
        If two names on one side have the same comparison key.

    Examples
    --------
    >>> m = match_names(["PFGMPP", "ACGAN"], ["acgan", "BigGAN"])
    >>> m.pairs, m.unmatched_left, m.unmatched_right
    ([('ACGAN', 'acgan')], ['PFGMPP'], ['BigGAN'])
    """
    if kind not in ALIAS_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ALIAS_KINDS)}, not {kind!r}")
    aliases = aliases or Aliases()
    if kind == "dataset":
        key_of = aliases.dataset_key
    else:

        def key_of(name: str) -> str:
            return aliases.model_key(name, dataset)

    left_keyed = _keyed(left, key_of, "left")
    right_keyed = _keyed(right, key_of, "right")
    pairs = [
        (name, right_keyed[k]) for k, name in left_keyed.items() if k in right_keyed
    ]
    return Matching(
        pairs=pairs,
        unmatched_left=[n for k, n in left_keyed.items() if k not in right_keyed],
        unmatched_right=[n for k, n in right_keyed.items() if k not in left_keyed],
    )
