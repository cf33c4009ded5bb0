"""Load harness: simulated participants against the study server under gunicorn.

For each number of participants, a fresh database (SQLite file or PostgreSQL
database) gets a generated study through ``flask study load``; gunicorn
serves the app on 127.0.0.1 and a free port; N participants (one asyncio
event loop with aiohttp) each do a whole session at once: start, device
check, every block, every trial after a think time, complete. Requests that
fail are retried with backoff until answered or the time limit. Afterwards
every acknowledged response is reconciled against the database.

It prints sessions completed, responses per second, p50/p95/p99 latency of
the response endpoint (PUT .../trials/<position>), the client's and the
server's CPU, the load average, and the lost and duplicated counts (both
must be 0; the command exits 1 otherwise). Only 127.0.0.1 is contacted.

Run from the repository root::

    python benchmarks/load/run.py --db postgres --participants 50,200,500
    python benchmarks/load/run.py --db sqlite --participants 200 --fault kill-worker
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults import FAULTS, injector
from participant import Behaviour, Participant, RunStats, Step
from reconcile import reconcile
from server import (
    Database,
    Gunicorn,
    ServerOptions,
    StudyShape,
    app_environment,
    free_port,
    load_study,
    postgres_backend_cpu_s,
    write_study,
)


def machine_busy_s() -> tuple[float, float]:
    """CPU seconds busy and total over all cores so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class RunResult:
    db: str
    participants: int
    fault: str
    workers: str
    think_ms: float
    trials_per_session: int
    completed: int
    failed: int
    duration_s: float
    acknowledged: int
    responses_per_s: float
    steady_responses_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    steady_p50_ms: float
    steady_p95_ms: float
    steady_p99_ms: float
    requests: int
    retries: int
    connection_errors: int
    error_kinds: dict[str, int]
    replays: int
    images: int
    dropped: int
    statuses: dict[str, int]
    client_cpu_s: float
    client_core_share: float
    server_cpu_s: float
    server_system_cpu_s: float
    server_startup_cpu_s: float
    server_cpu_ms_per_request: float
    postgres_cpu_s: float | None
    machine_busy_share: float
    load_before: float
    load_after: float
    lost: int
    duplicated: int
    stored_unacknowledged: int


def steady_window(participants: list[Participant]) -> tuple[float, float]:
    """From the last start plus 2 s to the first finish: everyone is answering."""
    starts = [p.started_at for p in participants if p.started_at is not None]
    ends = [p.finished_at for p in participants if p.finished_at is not None]
    return max(starts) + 2.0, min(ends)


def steady_percentiles(participants: list[Participant], stats: RunStats) -> list[float]:
    """p50/p95/p99 in ms of response latencies inside the steady window.

    Without the ramp (session starts store whole trial lists) and the tail
    (few participants left). NaN when the window is under 5 s.
    """
    begin, end = steady_window(participants)
    times = np.asarray(stats.response_times)
    inside = (times >= begin) & (times <= end)
    if end - begin < 5.0 or not inside.any():
        return [float("nan")] * 3
    latencies = np.asarray(stats.response_latencies_s)[inside] * 1000
    return [float(x) for x in np.percentile(latencies, [50, 95, 99])]


def timeline(
    participants: list[Participant], stats: RunStats, step_s: float = 2.0
) -> list[str]:
    """The run in steps of ``step_s``: sessions started, answers, PUT latency.

    Shows where a whole run's tail comes from (the ramp of session starts,
    a fault) that the percentiles over the run cannot.
    """
    times = np.asarray(stats.response_times)
    if not len(times):
        return []
    latencies = np.asarray(stats.response_latencies_s) * 1000
    starts = np.asarray([p.started_at for p in participants if p.started_at])
    origin = min(times.min(), starts.min() if len(starts) else times.min())
    lines = [f"{'from s':>6} {'starts':>6} {'answers':>7} {'p50 ms':>7} {'p99 ms':>7}"]
    edge = origin
    while edge <= times.max():
        inside = (times >= edge) & (times < edge + step_s)
        n_starts = int(((starts >= edge) & (starts < edge + step_s)).sum())
        p50, p99 = (
            np.percentile(latencies[inside], [50, 99]) if inside.any() else (0, 0)
        )
        lines.append(
            f"{edge - origin:6.0f} {n_starts:6d} {int(inside.sum()):7d} "
            f"{p50:7.1f} {p99:7.1f}"
        )
        edge += step_s
    return lines


def steady_rate(participants: list[Participant], ack_times: list[float]) -> float:
    """Acknowledgements per second while every participant was mid-session.

    The window runs from the last start plus 2 s to the first finish; when
    it is shorter than 5 s, the rate over all acknowledgements is returned.
    """
    times = np.sort(np.asarray(ack_times))
    if len(times) < 2:
        return 0.0
    begin, end = steady_window(participants)
    if end - begin < 5.0:
        return len(times) / (times[-1] - times[0])
    inside = np.searchsorted(times, end) - np.searchsorted(times, begin)
    return float(inside / (end - begin))


async def drive(
    n: int,
    shape: StudyShape,
    server: Gunicorn,
    database: Database,
    behaviour: Behaviour,
    fault: str,
    fault_at_s: float,
    time_limit_s: float,
    seed: int,
) -> tuple[list[Participant], RunStats]:
    """Run ``n`` participants (and the fault) until all end or the time limit."""
    stats = RunStats()
    deadline = time.monotonic() + time_limit_s
    ramp_s = min(10.0, n / 25)
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4)
    async with aiohttp.ClientSession(connector=connector) as http:
        participants = [
            Participant(
                i, shape.slug, http, server.base_url, behaviour, stats, deadline, seed
            )
            for i in range(n)
        ]

        async def delayed(p: Participant) -> None:
            await asyncio.sleep(rng.uniform(0, ramp_s))
            await p.run()

        tasks = [asyncio.create_task(delayed(p)) for p in participants]
        inject = injector(fault, server, database, fault_at_s, click.echo)
        fault_task = asyncio.create_task(inject()) if inject else None
        await asyncio.gather(*tasks)
        if fault_task is not None:
            await fault_task
    return participants, stats


def run_one(
    db_kind: str,
    n: int,
    fault: str,
    options: ServerOptions,
    shape: StudyShape,
    behaviour: Behaviour,
    fault_at_s: float,
    time_limit_s: float,
    seed: int,
    keep: bool,
    show_timeline: bool = False,
) -> RunResult:
    instance = Path(tempfile.mkdtemp(prefix="load-"))
    database = Database(db_kind, instance)
    database.create()
    server = None
    try:
        env = app_environment(database, os.urandom(32).hex())
        study_file = write_study(instance / "study", shape)
        load_study(env, study_file)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server = Gunicorn(env, options, free_port(), instance / "gunicorn.log")
        server.start()
        click.echo(
            f"== {db_kind}, {n} participants, fault {fault}: gunicorn "
            f"{options.workers} {options.worker_class} workers x {options.threads} "
            "threads on "
            f"{server.base_url}, {shape.trials_per_session} trials per session, "
            f"think {behaviour.think_s * 1000:.0f} ms"
        )
        startup_cpu = server.cpu_s()
        load_before = os.getloadavg()[0]
        busy_before, total_before = machine_busy_s()
        cpu_before = time.process_time()
        began = time.monotonic()
        participants, stats = asyncio.run(
            drive(
                n,
                shape,
                server,
                database,
                behaviour,
                fault,
                fault_at_s,
                time_limit_s,
                seed,
            )
        )
        duration = time.monotonic() - began
        client_cpu = time.process_time() - cpu_before
        busy_after, total_after = machine_busy_s()
        load_after = os.getloadavg()[0]
        postgres_cpu = (
            postgres_backend_cpu_s(database.name) if db_kind == "postgres" else None
        )
        server.stop()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        server_system = children_after.ru_stime - children_before.ru_stime
        # Without starting the server: what the requests cost.
        server_load_cpu = server_cpu - startup_cpu
        acknowledged = [
            (p.token, position, payload)
            for p in participants
            if p.token is not None
            for position, payload in p.acks.items()
        ]
        check = reconcile(database.uri, acknowledged)
    finally:
        if server is not None:
            server.stop()
        if not keep:
            database.drop()
            shutil.rmtree(instance, ignore_errors=True)

    failed = [p for p in participants if p.step is not Step.DONE]
    latencies = np.asarray(stats.response_latencies_s) * 1000
    p50, p95, p99 = (
        np.percentile(latencies, [50, 95, 99]) if len(latencies) else (0.0,) * 3
    )
    acks = len(acknowledged)
    steady = steady_percentiles(participants, stats)
    span = max(stats.ack_times) - min(stats.ack_times) if acks > 1 else 1.0
    result = RunResult(
        db=db_kind,
        participants=n,
        fault=fault,
        workers=f"{options.workers}x{options.worker_class}x{options.threads}",
        think_ms=behaviour.think_s * 1000,
        trials_per_session=shape.trials_per_session,
        completed=n - len(failed),
        failed=len(failed),
        duration_s=duration,
        acknowledged=acks,
        responses_per_s=acks / span,
        steady_responses_per_s=steady_rate(participants, stats.ack_times),
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        steady_p50_ms=steady[0],
        steady_p95_ms=steady[1],
        steady_p99_ms=steady[2],
        requests=stats.requests,
        retries=stats.retries,
        connection_errors=stats.connection_errors,
        error_kinds=stats.error_kinds,
        replays=stats.replays,
        images=stats.images,
        dropped=stats.dropped,
        statuses={str(k): v for k, v in sorted(stats.statuses.items())},
        client_cpu_s=client_cpu,
        client_core_share=client_cpu / duration,
        server_cpu_s=server_cpu,
        server_system_cpu_s=server_system,
        server_startup_cpu_s=startup_cpu,
        server_cpu_ms_per_request=(
            1000 * server_load_cpu / max(stats.requests + stats.images, 1)
        ),
        postgres_cpu_s=postgres_cpu,
        machine_busy_share=(busy_after - busy_before) / (total_after - total_before),
        load_before=load_before,
        load_after=load_after,
        lost=check.lost,
        duplicated=check.duplicated,
        stored_unacknowledged=check.stored_unacknowledged,
    )
    report(result, check.lines(), failed)
    if show_timeline:
        click.echo("\n".join(timeline(participants, stats)))
    return result


def report(result: RunResult, reconciliation: list[str], failed: list) -> None:
    r = result
    click.echo(
        f"sessions completed: {r.completed} of {r.participants} "
        f"(failed {r.failed}) in {r.duration_s:.1f} s"
    )
    for p in failed[:3]:
        click.echo(f"  participant {p.index} stopped at {p.step.value}: {p.error}")
    click.echo(
        f"responses acknowledged: {r.acknowledged}; {r.responses_per_s:.0f}/s over "
        f"the run, {r.steady_responses_per_s:.0f}/s with every participant active"
    )
    click.echo(
        f"response endpoint latency: p50 {r.p50_ms:.1f} ms, p95 {r.p95_ms:.1f} ms, "
        f"p99 {r.p99_ms:.1f} ms; with every participant active p50 "
        f"{r.steady_p50_ms:.1f}, p95 {r.steady_p95_ms:.1f}, p99 {r.steady_p99_ms:.1f}"
    )
    click.echo(
        f"requests {r.requests}, retries {r.retries}, connection errors "
        f"{r.connection_errors} {r.error_kinds or ''}, dropped on purpose "
        f"{r.dropped}, replays acknowledged {r.replays}, statuses {r.statuses}, "
        f"images fetched {r.images}"
    )
    postgres = (
        f"PostgreSQL backends {r.postgres_cpu_s:.1f} s; "
        if r.postgres_cpu_s is not None
        else ""
    )
    click.echo(
        f"CPU: client {r.client_cpu_s:.1f} s = {100 * r.client_core_share:.0f}% of "
        f"one core; server (gunicorn) {r.server_cpu_s:.1f} s, "
        f"{r.server_system_cpu_s:.1f} s of it in the kernel and "
        f"{r.server_startup_cpu_s:.1f} s starting up "
        f"({r.server_cpu_ms_per_request:.1f} ms per request); {postgres}machine "
        f"busy {100 * r.machine_busy_share:.0f}% of {os.cpu_count()} cores; load "
        f"average {r.load_before:.2f} -> {r.load_after:.2f}"
    )
    for line in reconciliation:
        click.echo(line)


def parse_counts(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        counts = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"got {value!r}; allowed: comma-separated whole numbers, e.g. 50,200,500"
        ) from None
    if not counts or any(not 1 <= c <= 2000 for c in counts):
        raise click.BadParameter(f"got {value!r}; allowed: numbers from 1 to 2000")
    return counts


@click.command()
@click.option(
    "--db",
    "db_kind",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
)
@click.option(
    "--participants",
    default="50,200,500",
    show_default=True,
    callback=parse_counts,
    help="Concurrent participants per run, comma-separated.",
)
@click.option("--fault", type=click.Choice(FAULTS), default="none", show_default=True)
@click.option(
    "--think-ms",
    default=500.0,
    show_default=True,
    type=click.FloatRange(0, 60_000),
    help="Mean pause before each answer (uniform, 0.5x to 1.5x).",
)
@click.option(
    "--trials",
    default=100,
    show_default=True,
    type=click.IntRange(4, 1000),
    help="Main trials per session (plus 4 practice and 2 checks).",
)
@click.option(
    "--images/--no-images",
    default=False,
    show_default=True,
    help="Fetch every image of a block, as the browser does.",
)
@click.option(
    "--drop",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 0.9),
    help="With --fault drop-retry: share of requests first sent and dropped.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--worker-class",
    default="gthread",
    show_default=True,
    type=click.Choice(["gthread", "sync"]),
)
@click.option(
    "--fault-at",
    default=None,
    type=click.FloatRange(0, 3600),
    help="Seconds after the start to inject the fault [default: 40% of a session].",
)
@click.option(
    "--time-limit",
    default=900.0,
    show_default=True,
    type=click.FloatRange(10, 7200),
    help="Seconds; participants still running then stop.",
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append each run's figures as a JSON line.",
)
@click.option("--keep", is_flag=True, help="Keep the database and instance folder.")
@click.option(
    "--timeline",
    "show_timeline",
    is_flag=True,
    help="Print starts, answers and PUT latency per 2 s of the run.",
)
def main(
    db_kind: str,
    participants: list[int],
    fault: str,
    think_ms: float,
    trials: int,
    images: bool,
    drop: float,
    workers: int,
    threads: int,
    worker_class: str,
    fault_at: float | None,
    time_limit: float,
    seed: int,
    json_path: Path | None,
    keep: bool,
    show_timeline: bool,
) -> None:
    """Run simulated participants against gunicorn and reconcile every response."""
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server is
    # stopped and the database dropped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shape = StudyShape(per_session=trials - trials % 2)
    behaviour = Behaviour(
        think_s=think_ms / 1000,
        fetch_images=images,
        drop=drop if fault == "drop-retry" else 0.0,
    )
    options = ServerOptions(workers=workers, threads=threads, worker_class=worker_class)
    if fault_at is None:
        fault_at = max(3.0, 0.4 * shape.trials_per_session * behaviour.think_s)
    click.echo(
        f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    results = []
    for n in participants:
        result = run_one(
            db_kind,
            n,
            fault,
            options,
            shape,
            behaviour,
            fault_at,
            time_limit,
            seed,
            keep,
            show_timeline,
        )
        results.append(result)
        if json_path is not None:
            with json_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(result)) + "\n")

    click.echo(
        "\n db       N  fault         done  resp/s steady  p50ms  p95ms  p99ms lost dup"
    )
    for r in results:
        click.echo(
            f" {r.db:8} {r.participants:<4} {r.fault:12} {r.completed:5} "
            f"{r.responses_per_s:7.0f} {r.steady_responses_per_s:6.0f} {r.p50_ms:6.1f} "
            f"{r.p95_ms:6.1f} {r.p99_ms:6.1f} {r.lost:4} {r.duplicated:3}"
        )
    if any(r.lost or r.duplicated for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
