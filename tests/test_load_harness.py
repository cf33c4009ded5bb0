"""The load harness (benchmarks/load) counts what it must, and finds nothing lost.

The reconciliation is checked against planted faults: a response acknowledged
but not stored, one stored with another value, and an answer counted twice
must each be counted. A short run of the whole harness (gunicorn on loopback)
with each fault (a worker killed, the server restarted, database connections
terminated or SQLite locked, clients dropping requests) must end with every
participant done and 0 lost, 0 duplicated.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from api_helpers import Participant, no_fsync, response_body, small_study
from sqlalchemy import update

from study_server.db import db
from study_server.models import Session, Trial

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "benchmarks" / "load"


def _load_reconcile():
    # benchmarks/ is not a package; load the module by path without putting
    # its folder (with generic names like server.py) on sys.path.
    spec = importlib.util.spec_from_file_location(
        "load_reconcile", HARNESS / "reconcile.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.reconcile


reconcile = _load_reconcile()


def _answered(client, study, external_id: str) -> tuple[Participant, dict]:
    p = Participant(client, study, external_id)
    p.start()
    p.device()
    acks = {}
    for trial in p.block(0).json["trials"]:
        body = response_body("real", rt_ms=500.25 + trial["position"])
        assert p.put(trial["position"], body).status_code == 200
        acks[trial["position"]] = body
    return p, acks


def test_reconciliation_counts_lost_changed_and_double_counted_answers(
    app, client, make_study, database_uri
):
    study = small_study(make_study)
    p, acks = _answered(client, study, "R1")
    q, more = _answered(client, study, "R2")
    logged = [(p.token, pos, body) for pos, body in acks.items()]
    logged += [(q.token, pos, body) for pos, body in more.items()]
    clean = reconcile(database_uri, logged)
    assert (clean.lost, clean.duplicated) == (0, 0)
    assert clean.acknowledged == clean.stored == len(acks) + len(more)

    # Acknowledged but never stored, and acknowledged with another value.
    missing = (p.token, 5, response_body("generated"))
    changed = (q.token, 0, {**more[0], "rt_ms": more[0]["rt_ms"] + 1})
    faulty = [*logged[1:], missing, changed]
    result = reconcile(database_uri, [x for x in faulty if x[:2] != (q.token, 0)])
    assert result.lost == 1 and result.stored_unacknowledged == 2
    result = reconcile(database_uri, faulty)
    assert result.lost == 2

    # An answer counted twice on its session.
    with app.app_context():
        db.session.execute(
            update(Session)
            .where(Session.token == p.token)
            .values(n_answered=Session.n_answered + 1)
        )
        db.session.commit()
    assert reconcile(database_uri, logged).duplicated == 1
    with app.app_context():
        db.session.execute(
            update(Trial).where(Trial.position == 0).values(visibility_lost=True)
        )
        db.session.commit()
    assert reconcile(database_uri, logged).lost == 2


# What each fault prints when it happens; SQLite has no connections to
# terminate, so db-terminate locks it exclusively instead.
FAULT_SIGNS = {
    "kill-worker": (r"fault: SIGKILL worker", r"fault: SIGKILL worker"),
    "restart": (r"fault: server answered again", r"fault: server answered again"),
    "db-terminate": (r"fault: \d+ connections terminated", r"fault: SQLite locked"),
    "drop-retry": (r"dropped on purpose [1-9]", r"dropped on purpose [1-9]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULT_SIGNS))
def test_a_short_harness_run_with_faults_loses_nothing(database_uri, fault):
    # database_uri marks this for the PostgreSQL pass; the harness makes its
    # own fresh database there. Sessions of 26 answers 0.3 s apart overlap
    # the fault at 1 s.
    kind = "postgres" if database_uri.startswith("postgresql") else "sqlite"
    command = [sys.executable, str(HARNESS / "run.py"), "--db", kind]
    command += ["--participants", "8", "--trials", "20", "--think-ms", "300"]
    command += ["--fault", fault, "--fault-at", "1", "--time-limit", "120"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sessions completed: 8 of 8" in done.stdout
    assert re.search(r"^  lost: 0$", done.stdout, re.M), done.stdout[-3000:]
    assert re.search(r"^  duplicated: 0 ", done.stdout, re.M), done.stdout[-3000:]
    sign = FAULT_SIGNS[fault][kind == "sqlite"]
    assert re.search(sign, done.stdout), done.stdout[-3000:]
