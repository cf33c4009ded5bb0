"""Long fuzz run of the participant API: tests/test_fuzz_api.py with a big budget.

CI runs the fuzz test with 200 cases. This runs the same test with
``--cases`` cases on SQLite and then on PostgreSQL (the local server,
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), and prints the cases
tried, the wall time and the cases per second of each. Any failure (a 500,
an undocumented status or body, a refused request that changed stored
responses) fails the run with hypothesis's shrunk example.

Run from the repository root::

    python benchmarks/fuzz/run.py --cases 5000
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run(cases: int, database: str, seed: int) -> tuple[int, float, str]:
    env = dict(os.environ, FUZZ_EXAMPLES=str(cases))
    env.pop("STUDY_TEST_DATABASE_URI", None)
    if database == "postgres":
        env["STUDY_TEST_DATABASE_URI"] = POSTGRES
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_fuzz_api.py",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--hypothesis-seed={seed}",
        "-k",
        "fuzzed_requests",
    ]
    began = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - began
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise click.ClickException(f"fuzz run on {database} failed:\n{output[-6000:]}")
    line = next((x for x in output.splitlines() if x.startswith("fuzz:")), "")
    tried = re.match(r"fuzz: (\d+) cases", line)
    return int(tried.group(1)) if tried else 0, elapsed, line


@click.command()
@click.option("--cases", default=5000, show_default=True, type=click.IntRange(1, 10**6))
@click.option(
    "--db",
    "databases",
    multiple=True,
    type=click.Choice(["sqlite", "postgres"]),
    default=("sqlite", "postgres"),
    show_default=True,
)
@click.option("--seed", default=0, show_default=True, type=int)
def main(cases: int, databases: tuple[str, ...], seed: int) -> None:
    """Fuzz the participant API from its OpenAPI description for CASES cases."""
    click.echo(
        f"machine: {os.cpu_count()} cores, {platform.platform()}; load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    for database in databases:
        tried, elapsed, line = run(cases, database, seed)
        click.echo(f"{database}: {line.removeprefix('fuzz: ')}")
        click.echo(
            f"{database}: {tried} cases in {elapsed:.0f} s "
            f"({tried / elapsed:.1f} per s, including the test's start-up)"
        )


if __name__ == "__main__":
    main()
