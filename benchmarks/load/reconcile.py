"""Reconcile what participants were told was stored with what the database holds.

Lost: a response the server acknowledged that is not stored, or is stored
with a different value in any field. Duplicated: a trial stored as two rows,
a session's ``n_answered`` larger than its stored responses (an answer
counted twice), or two sessions for one participant. Stored responses that
no participant saw acknowledged are counted too: a participant that gave up
at the deadline may leave some, anything else should not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa

from study_server.services.grading import ResponsePayload

#: The answer's fields stored on the trial row, as the server validates them.
STORED_FIELDS = tuple(f.name for f in fields(ResponsePayload))


@dataclass
class Reconciliation:
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    duplicate_rows: int = 0
    overcounted: int = 0
    extra_sessions: int = 0
    stored_unacknowledged: int = 0
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"reconciliation: {self.acknowledged} acknowledged, {self.stored} stored",
            f"  lost: {self.lost}",
            f"  duplicated: {self.duplicated} (trial rows {self.duplicate_rows}, "
            f"answers counted twice {self.overcounted}, extra sessions "
            f"{self.extra_sessions})",
            f"  stored but never acknowledged: {self.stored_unacknowledged}",
            *(f"  e.g. {example}" for example in self.examples[:5]),
        ]


def reconcile(
    database_uri: str, acknowledged: Iterable[tuple[str, int, dict[str, Any]]]
) -> Reconciliation:
    """Compare ``(token, position, payload)`` acknowledgements with the database."""
    result = Reconciliation()
    engine = sa.create_engine(database_uri)
    with engine.connect() as connection:
        columns = ", ".join(f"t.{name}" for name in STORED_FIELDS)
        rows = connection.execute(
            sa.text(
                f"SELECT s.token, t.position, {columns} FROM trial t "
                "JOIN session s ON s.id = t.session_id WHERE t.response IS NOT NULL"
            )
        ).all()
        stored: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        for row in rows:
            stored.setdefault((row[0], row[1]), []).append(tuple(row[2:]))
        result.stored = len(rows)
        result.duplicate_rows = _count(
            connection,
            sa.text(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM trial "
                "GROUP BY session_id, position HAVING count(*) > 1) AS d"
            ),
        )
        result.overcounted = _count(
            connection,
            sa.text(
                "SELECT coalesce(sum(s.n_answered - a.n), 0) FROM session s JOIN "
                "(SELECT session_id, count(response) AS n FROM trial "
                "GROUP BY session_id) AS a ON a.session_id = s.id "
                "WHERE s.n_answered > a.n"
            ),
        )
        result.extra_sessions = _count(
            connection,
            sa.text(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n "
                "FROM session GROUP BY study_id, participant_id "
                "HAVING count(*) > 1) AS d"
            ),
        )
    engine.dispose()

    seen = set()
    for token, position, payload in acknowledged:
        result.acknowledged += 1
        seen.add((token, position))
        expected = tuple(payload[name] for name in STORED_FIELDS)
        found = stored.get((token, position), [])
        if not found:
            result.lost += 1
            result.examples.append(f"lost: {token[:8]}.../{position} not stored")
        elif any(_differs(expected, row) for row in found):
            result.lost += 1
            result.examples.append(
                f"lost: {token[:8]}.../{position} stored {found[0]}, sent {expected}"
            )
    result.stored_unacknowledged = sum(
        len(rows) for key, rows in stored.items() if key not in seen
    )
    result.duplicated = (
        result.duplicate_rows + result.overcounted + result.extra_sessions
    )
    return result


def _count(connection: sa.Connection, query: sa.TextClause) -> int:
    # PostgreSQL's sum() is numeric (a Decimal here); counts are whole numbers.
    return int(connection.scalar(query) or 0)


def _differs(expected: tuple[Any, ...], row: tuple[Any, ...]) -> bool:
    # Booleans come back as 0/1 from SQLite; numbers are compared exactly,
    # since every value sent is exact in binary floating point or short
    # decimal that round-trips through JSON and a double column.
    return any(
        (bool(b) if isinstance(a, bool) and b is not None else b) != a
        for a, b in zip(expected, row, strict=True)
    )
