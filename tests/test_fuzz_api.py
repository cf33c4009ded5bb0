"""Fuzzing the participant API from its OpenAPI description (schemathesis + hypothesis).

Requests are generated from study_server/openapi.py, both valid ones
(positive) and ones that break the schema (negative), against a study with
two live sessions. Path parameters are sometimes the real ones (a live
session token, a served block, an answered position, the real study) so that
requests reach the services, and otherwise generated. Every answer must have
a status the operation documents, the JSON error envelope for errors, the
documented schema, never a 500; schema-breaking requests must be refused;
and a refused request must leave the stored responses exactly as they were.

The budget is ``FUZZ_EXAMPLES`` cases (200 by default, about 15-30 s);
benchmarks/fuzz/run.py runs the same test with a long budget.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from api_helpers import Participant, no_fsync, response_body, small_study
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_helpers import spec
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from study_server.db import db
from study_server.models import Session, Trial

pytestmark = [pytest.mark.usefixtures("no_fsync")]
assert no_fsync  # a fixture, used through pytestmark

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
SCHEMA = schemathesis.openapi.from_dict(spec())
OPERATIONS = [
    (path, method)
    for path, item in spec()["paths"].items()
    for method in item
    if method != "parameters"
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
REFUSAL_SAFE = [c for c in CHECKS if c is not negative_data_rejection]
STORED = (
    Trial.response,
    Trial.rt_ms,
    Trial.exposure_ms,
    Trial.intended_frames,
    Trial.achieved_frames,
    Trial.frame_interval_ms,
    Trial.onset_ms,
    Trial.offset_ms,
    Trial.visibility_lost,
    Trial.focus_lost,
    Trial.correct,
    Trial.timing_invalid,
    Trial.payload_digest,
    Trial.responded_at,
)


def stored_responses(app) -> dict:
    """Every stored response, and each session's status and counts."""
    with app.app_context():
        trials = db.session.execute(
            select(Trial.session_id, Trial.position, *STORED).where(
                Trial.response.is_not(None)
            )
        ).all()
        sessions = db.session.execute(
            select(Session.id, Session.status, Session.n_answered)
        ).all()
        db.session.rollback()
    return {
        "trials": {(row[0], row[1]): tuple(row[2:]) for row in trials},
        "sessions": sorted(tuple(row) for row in sessions),
    }


@pytest.fixture
def live(app, client, make_study):
    """A study with one session part-way through and one just started."""
    study = small_study(make_study, platform="prolific")
    first = Participant(client, study, "FUZZ1")
    first.start()
    first.device()
    served = first.block(0).json["trials"]
    for trial in served:
        assert first.answer(trial["position"]).status_code == 200
    first.block(1)
    second = Participant(client, study, "FUZZ2")
    second.start()
    return {
        "slug": study.slug,
        "tokens": [first.token, second.token],
        "opaque": served[0]["image_url"].rsplit("/", 1)[1],
        "answered": [t["position"] for t in served],
    }


@pytest.fixture(scope="module")
def tally(request):
    counts = {"cases": 0, "errors": 0, "negative": 0}
    yield counts
    if not counts["cases"]:
        return
    # Printed past pytest's capture so that every run shows its budget.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(
            f"\nfuzz: {counts['cases']} cases tried ({counts['negative']} "
            f"schema-breaking), {counts['errors']} answered with an error status, "
            "none a 500"
        )


def fixed_parameters(data, path: str, live: dict) -> dict:
    """Real path parameters half of the time, so requests reach the services."""
    fixed = {}
    if "{token}" in path and data.draw(st.booleans(), label="real token"):
        fixed["token"] = data.draw(st.sampled_from(live["tokens"]), label="token")
    if "{slug}" in path and data.draw(st.booleans(), label="real slug"):
        fixed["slug"] = live["slug"]
    if "{opaque}" in path and data.draw(st.booleans(), label="real image"):
        fixed["opaque"] = live["opaque"]
    if "{position}" in path and data.draw(st.booleans(), label="real position"):
        fixed["position"] = data.draw(st.integers(0, 15), label="position")
    if "{block}" in path and data.draw(st.booleans(), label="real block"):
        fixed["block"] = data.draw(st.integers(0, 3), label="block")
    return fixed


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_fuzzed_requests_get_documented_answers_and_change_nothing_when_refused(
    app, live, tally, data
):
    path, method = data.draw(st.sampled_from(OPERATIONS), label="operation")
    mode = data.draw(st.sampled_from(list(GenerationMode)), label="mode")
    operation = SCHEMA[path][method.upper()]
    fixed = fixed_parameters(data, path, live)
    case = data.draw(
        operation.as_strategy(generation_mode=mode, path_parameters=fixed or None),
        label="case",
    )
    before = stored_responses(app)
    answer = case.call(app=app)
    tally["cases"] += 1
    tally["negative"] += mode is GenerationMode.NEGATIVE
    # A body over MAX_CONTENT_LENGTH is refused with 413 before it is read;
    # schemathesis's negative-data check does not count 413 as a refusal.
    checks = [c for c in CHECKS if answer.status_code != 413 or c in REFUSAL_SAFE]
    case.validate_response(answer, checks=checks)
    if answer.status_code >= 400:
        tally["errors"] += 1
        body = answer.json()
        assert body["error"]["status"] == answer.status_code, body
        assert stored_responses(app) == before, (
            f"{method.upper()} {case.formatted_path} was refused with "
            f"{answer.status_code} but changed stored responses"
        )


def test_a_valid_answer_among_fuzzed_ones_is_stored_once(app, client, make_study):
    # The fuzz test above rarely hits a valid unanswered position with a valid
    # body; this pins down that such a request does change the stored data, so
    # the comparison there is not vacuous.
    study = small_study(make_study, platform="prolific")
    p = Participant(client, study, "FUZZ3")
    p.start()
    p.device()
    p.block(0)
    before = stored_responses(app)
    assert p.put(0, response_body()).status_code == 200
    after = stored_responses(app)
    assert len(after["trials"]) == len(before["trials"]) + 1
    assert p.put(0, response_body()).json["replay"] is True
    assert stored_responses(app) == after
