"""Print the runs recorded by ``run.py --json FILE`` as a Markdown table.

Run from the repository root::

    python benchmarks/load/table.py results.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

import click

COLUMNS = (
    ("db", "db", "{}"),
    ("N", "participants", "{}"),
    ("fault", "fault", "{}"),
    ("gunicorn", "workers", "{}"),
    ("done", "completed", "{}"),
    ("resp/s", "responses_per_s", "{:.0f}"),
    ("steady resp/s", "steady_responses_per_s", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p95 ms", "p95_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("steady p99 ms", "steady_p99_ms", "{:.0f}"),
    ("retries", "retries", "{}"),
    ("replays", "replays", "{}"),
    ("server CPU ms/req", "server_cpu_ms_per_request", "{:.1f}"),
    ("client core", "client_core_share", "{:.0%}"),
    ("load avg", "load_before", "{:.1f}"),
    ("lost", "lost", "{}"),
    ("dup", "duplicated", "{}"),
)


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def main(path: Path) -> None:
    """Print the runs in PATH (JSON lines) as a Markdown table."""
    click.echo("| " + " | ".join(title for title, _, _ in COLUMNS) + " |")
    click.echo("|" + "---|" * len(COLUMNS))
    for line in path.read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        # Runs recorded before a column existed show "-" there.
        cells = [
            form.format(run[key]) if key in run else "-" for _, key, form in COLUMNS
        ]
        click.echo("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
