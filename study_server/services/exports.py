"""Streaming exports of a study: per-trial, per-session and event tables.

One implementation serves the dashboard's downloads, ``flask export`` and
``analysis export``. Rows come from the database in batches (``yield_per``, a
server-side cursor on PostgreSQL) and are written as they come, so memory
stays flat however many trials a study has.

The columns are those of :mod:`study_server.export_schema`. In the CSV files
timestamps are UTC ISO-8601 with ``+00:00``, booleans ``true``/``false``, and a
missing value is an empty cell; Parquet files (when pyarrow is installed) hold
the same columns with the schema's types. A dataset is laid out for Psych-DS
(https://psych-ds.github.io/)::

    dataset_description.json
    data/study-<slug>_description-trials_data.csv
    data/study-<slug>_description-sessions_data.csv
    data/study-<slug>_description-events_data.csv
    data/parquet/study-<slug>_description-<table>_data.parquet

(Psych-DS keyword values are letters and digits only, so the slug's hyphens
are dropped in file names; the slug itself is in every row and in the
description.) Participant platform ids are replaced by keyed pseudonyms
(:mod:`study_server.services.pseudonyms`) unless they are asked for explicitly.

The export reads one consistent snapshot: a deferred transaction on SQLite
(WAL lets participants keep writing meanwhile; the app's usual ``BEGIN
IMMEDIATE`` would lock them out for the whole export) and a read-only
``REPEATABLE READ`` transaction on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import String, case, func, select, type_coerce
from sqlalchemy.engine import Connection, Engine

from ..db import utcnow
from ..errors import NotFound, OutOfRange
from ..export_schema import EVENT_COLUMNS, SESSION_COLUMNS, TRIAL_COLUMNS
from ..models import Event, Participant, Session, Stimulus, Study, Trial
from .pseudonyms import Pseudonymizer

Columns = tuple[tuple[str, str, str], ...]

TABLES: dict[str, Columns] = {
    "trials": TRIAL_COLUMNS,
    "sessions": SESSION_COLUMNS,
    "events": EVENT_COLUMNS,
}
FORMATS = ("csv", "parquet", "both")
PSYCH_DS_VERSION = "Psych-DS 0.1.0"
DESCRIPTION_FILE = "dataset_description.json"

#: Rows fetched from the database per round trip.
FETCH_ROWS = 2000
#: Rows per Arrow record batch, and per Parquet row group.
PARQUET_BATCH_ROWS = 10_000
PARQUET_ROW_GROUP_ROWS = 100_000
#: Rows written between two chances for a streamed response to send bytes.
STREAM_STEP_ROWS = 2000

_T = Trial.__table__
_S = Session.__table__
_P = Participant.__table__
_ST = Stimulus.__table__
_E = Event.__table__
_STUDY = Study.__table__

# Units of the columns that have one, for the Psych-DS description.
_UNITS = {
    "_ms": "milliseconds",
    "_frames": "frames",
    "_width": "CSS pixels",
    "_height": "CSS pixels",
}


def pyarrow_available() -> bool:
    """Whether Parquet files can be written."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_formats(name: str) -> tuple[str, ...]:
    """Turn ``csv``, ``parquet`` or ``both`` into the file formats to write.

    Raises
    ------
    OutOfRange
        An unknown name, or Parquet without pyarrow installed.
    """
    if name not in FORMATS:
        raise OutOfRange(
            f"unknown export format {name!r}; allowed: {', '.join(FORMATS)}",
            field="format",
        )
    formats = ("csv", "parquet") if name == "both" else (name,)
    if "parquet" in formats and not pyarrow_available():
        raise OutOfRange(
            "Parquet needs pyarrow, which is not installed (pip install pyarrow); "
            "use the csv format",
            field="format",
        )
    return formats


@dataclass(frozen=True)
class StudyInfo:
    """What an export needs to know about its study."""

    id: int
    slug: str
    title: str
    dataset: str
    design: str
    status: str
    settings: dict[str, Any]


@contextlib.contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """Yield a connection in one read transaction that does not block writers."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_begin="DEFERRED")
        else:
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with connection.begin():
            yield connection


def study_info(connection: Connection, slug: str) -> StudyInfo:
    """Return the study ``slug``; :class:`NotFound` when there is none."""
    row = connection.execute(
        select(
            _STUDY.c.id,
            _STUDY.c.slug,
            _STUDY.c.title,
            _STUDY.c.dataset,
            _STUDY.c.design,
            _STUDY.c.status,
            _STUDY.c.settings,
        ).where(_STUDY.c.slug == slug)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no study with slug {slug!r}", field="study")
    return StudyInfo(*row)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _iso_sql(dialect: str, column: Any) -> Any | None:
    """SQL rendering a UTC timestamp column as ISO-8601 text with ``+00:00``.

    Formatting in the database saves parsing and re-formatting two datetimes
    per trial in Python (about a third of an export's time on SQLite). None
    for other databases, whose timestamps :func:`_iso` formats.
    """
    if dialect == "sqlite":
        # UTCDateTime stores naive UTC text: 'YYYY-MM-DD HH:MM:SS.ffffff'.
        text = type_coerce(column, String)
        micro = case((func.length(text) == 19, ".000000"), else_="")
        return func.replace(text, " ", "T", type_=String) + micro + "+00:00"
    if dialect == "postgresql":
        utc = func.timezone("UTC", column)
        return func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"', type_=String)
    return None


def _timestamps(
    connection: Connection, *columns: Any
) -> tuple[list[Any], Callable[[Any], str | None]]:
    """Select expressions for timestamp ``columns``, and how to finish a value."""
    dialect = connection.dialect.name
    rendered = [_iso_sql(dialect, column) for column in columns]
    if any(expression is None for expression in rendered):
        return list(columns), _iso
    return rendered, _unchanged


def _unchanged(value: Any) -> Any:
    return value


def _stream(connection: Connection, statement: Any) -> Iterator[Any]:
    return iter(connection.execution_options(yield_per=FETCH_ROWS).execute(statement))


# --- rows -------------------------------------------------------------------


#: Sessions whose trials are fetched by one query (see :func:`trial_rows`).
SESSION_BATCH = 100

_TRIAL_FIELDS = (
    _S.c.public_id,
    _P.c.platform,
    _P.c.external_id,
    _S.c.status,
    _S.c.model,
    _T.c.source,
    _ST.c.digest,
    _T.c.is_real,
    _T.c.kind,
    _T.c.position,
    _T.c.block,
    _T.c.response,
    _T.c.correct,
    _T.c.rt_ms,
    _T.c.exposure_ms,
    _T.c.intended_frames,
    _T.c.achieved_frames,
    _T.c.frame_interval_ms,
    _T.c.onset_ms,
    _T.c.offset_ms,
    _T.c.visibility_lost,
    _T.c.focus_lost,
    _T.c.timing_invalid,
)


def trial_rows(
    connection: Connection, study: StudyInfo, names: Pseudonymizer
) -> Iterator[tuple[Any, ...]]:
    """Yield one tuple per trial, in the order of :data:`TRIAL_COLUMNS`.

    Trials come session by session in position order. They are fetched for
    :data:`SESSION_BATCH` sessions at a time: one query ordered over the whole
    study makes SQLite sort every trial in a temporary B-tree before the first
    row comes out, whereas ``session_id IN (...)`` walks the (session_id,
    position) index in order and streams.
    """
    session_ids = (
        connection.execute(
            select(_S.c.id).where(_S.c.study_id == study.id).order_by(_S.c.id)
        )
        .scalars()
        .all()
    )
    joined = (
        _T.join(_S, _T.c.session_id == _S.c.id)
        .join(_P, _S.c.participant_id == _P.c.id)
        .join(_ST, _T.c.stimulus_id == _ST.c.id)
    )
    times, iso = _timestamps(connection, _T.c.served_at, _T.c.responded_at)
    within = study.design == "within"
    head = (study.slug, study.dataset)
    for first in range(0, len(session_ids), SESSION_BATCH):
        batch = session_ids[first : first + SESSION_BATCH]
        statement = (
            select(*_TRIAL_FIELDS, *times)
            .select_from(joined)
            .where(_T.c.session_id.in_(batch))
            .order_by(_T.c.session_id, _T.c.position)
        )
        for row in _stream(connection, statement):
            public_id, platform, external_id, status, model, source, digest = row[:7]
            is_real = row[7]
            # The condition: the session's model (between), or the stimulus's
            # own model in a within design, where real images belong to none.
            condition = (None if is_real else source) if within else model
            yield (
                *head,
                public_id,
                names(platform, external_id),
                platform,
                status,
                condition,
                source,
                digest[:16],
                *row[7:23],
                iso(row[23]),
                iso(row[24]),
            )


def session_rows(
    connection: Connection, study: StudyInfo, names: Pseudonymizer
) -> Iterator[tuple[Any, ...]]:
    """Yield one tuple per session, in the order of :data:`SESSION_COLUMNS`."""
    times, iso = _timestamps(
        connection, _S.c.started_at, _S.c.last_seen_at, _S.c.completed_at
    )
    statement = (
        select(
            _S.c.public_id,
            _P.c.platform,
            _P.c.external_id,
            _S.c.status,
            _S.c.model,
            _S.c.key_mapping,
            _S.c.exposure_ms,
            _S.c.frame_interval_ms,
            _S.c.n_trials,
            _S.c.n_answered,
            _S.c.checks_failed,
            _S.c.exclusion_reason,
            _S.c.user_agent,
            _S.c.screen_width,
            _S.c.screen_height,
            *times,
            _S.c.answers,
        )
        .select_from(_S.join(_P, _S.c.participant_id == _P.c.id))
        .where(_S.c.study_id == study.id)
        .order_by(_S.c.id)
    )
    for row in _stream(connection, statement):
        public_id, platform, external_id = row[:3]
        answers = _redact(row[18], names, platform, external_id)
        yield (
            study.slug,
            study.dataset,
            public_id,
            names(platform, external_id),
            platform,
            *row[3:15],
            iso(row[15]),
            iso(row[16]),
            iso(row[17]),
            _json(answers),
        )


def event_rows(
    connection: Connection, study: StudyInfo, names: Pseudonymizer
) -> Iterator[tuple[Any, ...]]:
    """Yield one tuple per event, in the order of :data:`EVENT_COLUMNS`."""
    times, iso = _timestamps(connection, _E.c.created_at)
    statement = (
        select(
            _S.c.public_id,
            _P.c.platform,
            _P.c.external_id,
            _E.c.kind,
            _E.c.actor,
            _E.c.data,
            *times,
        )
        .select_from(
            _E.outerjoin(_S, _E.c.session_id == _S.c.id).outerjoin(
                _P, _S.c.participant_id == _P.c.id
            )
        )
        .where(_E.c.study_id == study.id)
        .order_by(_E.c.created_at, _E.c.id)
    )
    for public_id, platform, external_id, kind, actor, data, created_at in _stream(
        connection, statement
    ):
        data = _redact(data, names, platform, external_id)
        yield (study.slug, public_id, kind, actor, _json(data), iso(created_at))


ROWS: dict[
    str, Callable[[Connection, StudyInfo, Pseudonymizer], Iterator[tuple[Any, ...]]]
] = {"trials": trial_rows, "sessions": session_rows, "events": event_rows}


def count_rows(connection: Connection, study: StudyInfo, table: str) -> int:
    """Return how many rows ``table`` will have, for progress bars."""
    if table == "trials":
        statement = (
            select(func.count())
            .select_from(_T.join(_S, _T.c.session_id == _S.c.id))
            .where(_S.c.study_id == study.id)
        )
    elif table == "sessions":
        statement = select(func.count()).where(_S.c.study_id == study.id)
    else:
        statement = select(func.count()).where(_E.c.study_id == study.id)
    return int(connection.execute(statement).scalar_one())


def _json(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# Shorter platform ids are replaced only where they are a whole value, so that
# a short id cannot rewrite unrelated text that happens to contain it.
_MIN_SUBSTRING_ID = 8


def _redact(
    value: Any, names: Pseudonymizer, platform: str | None, external_id: str | None
) -> Any:
    """Replace the participant's platform id by its pseudonym inside ``value``."""
    if names.includes_platform_ids or not external_id or platform is None:
        return value
    if isinstance(value, dict):
        return {k: _redact(v, names, platform, external_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, names, platform, external_id) for v in value]
    if not isinstance(value, str) or external_id not in value:
        return value
    if value == external_id or len(external_id) >= _MIN_SUBSTRING_ID:
        return value.replace(external_id, names(platform, external_id))
    return value


# --- writers ------------------------------------------------------------------


def write_csv(
    text: IO[str], columns: Columns, rows: Iterable[tuple[Any, ...]]
) -> Iterator[int]:
    """Write rows as CSV to ``text``; yield the running row count now and then.

    A generator, so that a streamed response can send what is written so far
    between steps; exhaust it to write everything.
    """
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([name for name, _, _ in columns])
    flags = [i for i, (_, dtype, _) in enumerate(columns) if dtype == "boolean"]
    n = 0
    for row in rows:
        # The csv module writes None as an empty cell and numbers with repr();
        # only booleans need spelling out.
        cells = list(row)
        for i in flags:
            value = cells[i]
            if value is not None:
                cells[i] = "true" if value else "false"
        writer.writerow(cells)
        n += 1
        if n % STREAM_STEP_ROWS == 0:
            yield n
    yield n


def _arrow_schema(columns: Columns) -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "boolean": pa.bool_(),
        "Int64": pa.int64(),
        "Float64": pa.float64(),
    }
    return pa.schema([(name, types[dtype]) for name, dtype, _ in columns])


def write_parquet(
    binary: IO[bytes], columns: Columns, rows: Iterable[tuple[Any, ...]]
) -> Iterator[int]:
    """Write rows as Parquet to ``binary``; yield the running row count now and then.

    Rows are turned into Arrow record batches of :data:`PARQUET_BATCH_ROWS`
    (Python tuples take ten times the memory of Arrow columns), and batches
    are written as row groups of :data:`PARQUET_ROW_GROUP_ROWS`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(columns)
    text_columns = {i for i, (_, dtype, _) in enumerate(columns) if dtype == "string"}

    def batch(buffer: list[tuple[Any, ...]]) -> Any:
        arrays = []
        for i, values in enumerate(zip(*buffer, strict=True)):
            if i in text_columns:
                # An empty text is a missing value, as in the CSV files.
                values = tuple(None if v == "" else v for v in values)
            arrays.append(pa.array(values, type=schema.field(i).type))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    n = 0
    with pq.ParquetWriter(binary, schema) as writer:
        buffer: list[tuple[Any, ...]] = []
        batches: list[Any] = []
        for row in rows:
            buffer.append(row)
            n += 1
            if len(buffer) == PARQUET_BATCH_ROWS:
                batches.append(batch(buffer))
                buffer.clear()
                if len(batches) * PARQUET_BATCH_ROWS >= PARQUET_ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(batches, schema=schema))
                    batches.clear()
            if n % STREAM_STEP_ROWS == 0:
                yield n
        if buffer:
            batches.append(batch(buffer))
        if batches or n == 0:
            writer.write_table(pa.Table.from_batches(batches, schema=schema))
    yield n


def _keyword(value: str) -> str:
    # Psych-DS keyword values are letters and digits only.
    return re.sub(r"[^A-Za-z0-9]", "", value) or "study"


def file_name(slug: str, table: str, fmt: str) -> str:
    """Return a data file's path inside the dataset, in the Psych-DS layout."""
    stem = f"study-{_keyword(slug)}_description-{table}_data"
    return f"data/{stem}.csv" if fmt == "csv" else f"data/parquet/{stem}.parquet"


def _unit(name: str) -> str | None:
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return unit
    return None


def variables_measured() -> list[dict[str, Any]]:
    """Every column of every table, once, as schema.org PropertyValues."""
    meanings: dict[str, list[tuple[str, str]]] = {}
    for table, columns in TABLES.items():
        for name, _, meaning in columns:
            meanings.setdefault(name, []).append((table, meaning))
    variables = []
    for name, uses in meanings.items():
        distinct = {meaning for _, meaning in uses}
        if len(distinct) == 1:
            description = uses[0][1]
        else:
            description = "; ".join(f"{table}: {meaning}" for table, meaning in uses)
        variable = {"@type": "PropertyValue", "name": name, "description": description}
        unit = _unit(name)
        if unit is not None:
            variable["unitText"] = unit
        variables.append(variable)
    return variables


def dataset_description(
    study: StudyInfo,
    *,
    authors: Iterable[str] = (),
    includes_platform_ids: bool,
    created: datetime | None = None,
) -> dict[str, Any]:
    """Return the Psych-DS ``dataset_description.json`` of a study's export."""
    people = [{"@type": "Person", "name": name} for name in authors]
    participants = (
        "platform ids as given by the platform"
        if includes_platform_ids
        else "pseudonyms (a keyed hash of the platform id)"
    )
    text = (
        f"Responses of the study {study.title!r} ({study.slug}): participants "
        f"judged images of the {study.dataset} dataset as real or generated "
        f"({study.design} design). One row per trial in the trials table, one per "
        "session in the sessions table, and the event log. Participants are "
        f"identified by {participants}. Times are UTC."
    )
    description: dict[str, Any] = {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": study.title,
        "identifier": study.slug,
        "description": text,
        "schemaVersion": PSYCH_DS_VERSION,
        "dateCreated": _iso(created or utcnow()),
        "keywords": [
            "human realism",
            "generative models",
            study.dataset,
            f"{study.design} design",
        ],
        "variableMeasured": variables_measured(),
    }
    if people:
        description["creator"] = people
        description["author"] = people
    return description


# --- datasets -------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export wrote: ``(path, rows)`` per data file."""

    study: str
    files: list[tuple[str, int]] = field(default_factory=list)
    includes_platform_ids: bool = False

    def lines(self) -> list[str]:
        """A human-readable summary for the command line."""
        out = [f"{path}: {rows} row(s)" for path, rows in self.files]
        out.append(
            "Participants: platform ids included."
            if self.includes_platform_ids
            else "Participants: pseudonymised (keyed hash)."
        )
        return out


class Target:
    """Where a dataset's files go: a folder or a zip archive."""

    def open(self, path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        raise NotImplementedError


class FolderTarget(Target):
    """Files in a folder; each is written as ``<name>.part`` and renamed when done."""

    def __init__(self, root: Path):
        self.root = root

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        final = self.root / path
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")
        try:
            with open(part, "wb") as handle:
                yield handle
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)


class ZipTarget(Target):
    """Members of a zip archive under ``prefix/``."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str):
        self.archive = archive
        self.prefix = prefix

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        # The size is unknown until the end, so ZIP64 sizes are always allowed.
        with self.archive.open(f"{self.prefix}/{path}", "w", force_zip64=True) as fh:
            yield fh


def _write_table(
    target: Target, path: str, fmt: str, columns: Columns, rows: Iterator[tuple]
) -> Iterator[int]:
    with target.open(path) as binary:
        if fmt == "parquet":
            yield from write_parquet(binary, columns, rows)
            return
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        try:
            yield from write_csv(text, columns, rows)
        finally:
            text.flush()
            text.detach()


def dataset_steps(
    connection: Connection,
    study: StudyInfo,
    target: Target,
    names: Pseudonymizer,
    *,
    formats: tuple[str, ...] = ("csv",),
    authors: Iterable[str] = (),
    report: ExportReport | None = None,
    on_table: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Iterator[None]:
    """Write a study's dataset to ``target``, yielding between chunks of rows.

    ``on_table(path, total_rows)`` may return a callback that receives the
    running row count (for progress bars). Rows written are added to
    ``report``.
    """
    description = dataset_description(
        study, authors=authors, includes_platform_ids=names.includes_platform_ids
    )
    with target.open(DESCRIPTION_FILE) as handle:
        handle.write(json.dumps(description, ensure_ascii=False, indent=2).encode())
    yield

    for fmt in formats:
        for table, columns in TABLES.items():
            path = file_name(study.slug, table, fmt)
            tick = (
                on_table(path, count_rows(connection, study, table))
                if on_table
                else None
            )
            rows = ROWS[table](connection, study, names)
            n = 0
            for n in _write_table(target, path, fmt, columns, rows):
                if tick is not None:
                    tick(n)
                yield
            if report is not None:
                report.files.append((path, n))


def export_dataset(
    engine: Engine,
    slug: str,
    out_dir: str | Path,
    names: Pseudonymizer,
    *,
    formats: tuple[str, ...] = ("csv",),
    authors: Iterable[str] = (),
    on_table: Callable[[str, int], Callable[[int], None]] | None = None,
) -> ExportReport:
    """Export the study ``slug`` as a Psych-DS dataset in the folder ``out_dir``."""
    report = ExportReport(study=slug, includes_platform_ids=names.includes_platform_ids)
    with read_connection(engine) as connection:
        study = study_info(connection, slug)
        steps = dataset_steps(
            connection,
            study,
            FolderTarget(Path(out_dir)),
            names,
            formats=formats,
            authors=authors,
            report=report,
            on_table=on_table,
        )
        for _ in steps:
            pass
    return report


class ChunkSink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken out by :meth:`drain`."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def stream_dataset_zip(
    engine: Engine,
    slug: str,
    names: Pseudonymizer,
    *,
    formats: tuple[str, ...] = ("csv",),
    authors: Iterable[str] = (),
) -> Iterator[bytes]:
    """Yield a zip archive of the study's dataset, piece by piece.

    Every member lies under ``<slug>/``. The archive is written for an
    unseekable stream (sizes follow each member), as HTTP responses are.
    """
    sink = ChunkSink()
    with read_connection(engine) as connection:
        study = study_info(connection, slug)
        archive = zipfile.ZipFile(
            sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
        )
        with archive:
            target = ZipTarget(archive, study.slug)
            for _ in dataset_steps(
                connection, study, target, names, formats=formats, authors=authors
            ):
                data = sink.drain()
                if data:
                    yield data
    yield sink.drain()


def stream_table_csv(
    engine: Engine, slug: str, table: str, names: Pseudonymizer
) -> Iterator[bytes]:
    """Return an iterator of one table of the study as CSV bytes, piece by piece.

    Raises
    ------
    OutOfRange
        ``table`` is not trials, sessions or events (raised at once, before
        anything is streamed).
    """
    if table not in TABLES:
        raise OutOfRange(
            f"unknown table {table!r}; allowed: {', '.join(TABLES)}", field="table"
        )
    return _table_chunks(engine, slug, table, names)


def _table_chunks(
    engine: Engine, slug: str, table: str, names: Pseudonymizer
) -> Iterator[bytes]:
    sink = ChunkSink()
    text = io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8", newline="")
    with read_connection(engine) as connection:
        study = study_info(connection, slug)
        rows = ROWS[table](connection, study, names)
        for _ in write_csv(text, TABLES[table], rows):
            text.flush()
            data = sink.drain()
            if data:
                yield data
    text.flush()
    yield sink.drain()
