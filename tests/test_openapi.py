"""The OpenAPI description (study_server/openapi.py) is valid and in step with the app.

Every /api/v1 route is described with exactly its methods and path
parameters, and every described path is a route; the request examples are
valid and accepted by the server; the answers of a whole session, and of the
usual refusals, have documented statuses and match the response schemas.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_helpers import API, Participant, no_fsync, response_body, small_study
from openapi_helpers import (
    check_answer,
    operation_for,
    request_schema,
    schema_errors,
    spec,
)
from openapi_spec_validator import validate as validate_openapi

from study_server.openapi import API_BASE, build_spec

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

DOCS = Path(__file__).resolve().parents[1] / "docs" / "participant-api.md"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _routes(app) -> dict[str, set[str]]:
    """The app's /api/v1 routes as OpenAPI templates, with their methods."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_BASE + "/"):
            continue
        template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods - IGNORED_METHODS}
        routes.setdefault(template.removeprefix(API_BASE), set()).update(methods)
    return routes


def test_the_description_is_valid_openapi_3_1_and_is_served(client):
    validate_openapi(build_spec())
    answer = client.get(f"{API}/openapi.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.json == build_spec()
    assert answer.json["openapi"].startswith("3.1")
    assert answer.json["servers"] == [{"url": "/api/v1"}]


def test_every_route_is_described_with_its_methods_and_vice_versa(app):
    routes = _routes(app)
    described = {
        path: {m for m in item if m != "parameters"}
        for path, item in spec()["paths"].items()
    }
    assert set(routes) == set(described), (
        f"routes not described: {sorted(set(routes) - set(described))}; "
        f"described but not routes: {sorted(set(described) - set(routes))}"
    )
    for path, methods in routes.items():
        assert methods == described[path], f"{path}: {methods} != {described[path]}"


def test_path_parameters_match_the_route_converters(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_BASE + "/"):
            continue
        template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        item = spec()["paths"][template.removeprefix(API_BASE)]
        parameters = {p["name"]: p for p in item.get("parameters", [])}
        assert set(parameters) == set(rule.arguments), rule.rule
        for name, converter in rule._converters.items():
            kind = parameters[name]["schema"]["type"]
            expected = (
                "integer"
                if type(converter).__name__ == "IntegerConverter"
                else ("string")
            )
            assert kind == expected, f"{rule.rule}: {name} is {kind}"
            assert parameters[name]["in"] == "path" and parameters[name]["required"]


def test_every_endpoint_of_the_contract_document_is_described():
    # Headings like: ### `PUT /api/v1/sessions/<token>/trials/<position>` — ...
    headings = re.findall(
        r"^### `([A-Z]+) /api/v1(/[^`]*)`", DOCS.read_text("utf-8"), re.MULTILINE
    )
    assert len(headings) >= 9
    for method, path in headings:
        template = re.sub(r"<([a-z_]+)>", r"{\1}", path)
        template = template.replace("{n}", "{block}")
        assert template in spec()["paths"], f"{method} {path} is not described"
        assert method.lower() in spec()["paths"][template], f"{method} {path}"


def test_every_operation_documents_errors_with_the_envelope():
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = [int(s) for s in operation["responses"]]
            assert any(s < 300 for s in statuses), f"{method} {path}: no success"
            for status in statuses:
                if status < 400:
                    continue
                content = operation["responses"][str(status)]["content"]
                assert content == {"application/json": {"schema": error}}
            if "requestBody" in operation:
                assert 413 in statuses and 400 in statuses, f"{method} {path}"


def test_request_examples_are_valid_and_invalid_bodies_are_not():
    examples = 0
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or "requestBody" not in operation:
                continue
            media = operation["requestBody"]["content"]["application/json"]
            assert "example" in media, f"{method} {path}: no example"
            assert schema_errors(media["schema"], media["example"]) == []
            examples += 1
    assert examples == 6
    batch_item = spec()["components"]["schemas"]["BatchItem"]
    batch = spec()["paths"]["/sessions/{token}/responses"]["post"]
    for item in batch["requestBody"]["content"]["application/json"]["example"][
        "responses"
    ]:
        assert schema_errors(batch_item, item) == []
    put = request_schema("put", f"{API}/sessions/x/trials/0")
    for bad in (
        response_body("maybe"),
        response_body(rt_ms=-1),
        response_body(rt_ms=600_000),
        response_body(achieved_frames=1.5),
        response_body(extra=1),
        {"response": "real"},
    ):
        assert schema_errors(put, bad), bad


def test_the_request_examples_are_accepted_by_the_server(app, client, make_study):
    study = small_study(make_study, platform="prolific")
    examples = {
        template: {
            method: operation["requestBody"]["content"]["application/json"]["example"]
            for method, operation in item.items()
            if method != "parameters" and "requestBody" in operation
        }
        for template, item in spec()["paths"].items()
    }
    start = dict(examples["/studies/{slug}/sessions"]["post"])
    answer = client.post(f"{API}/studies/{study.slug}/sessions", json=start)
    assert answer.status_code == 201, answer.json
    token = answer.json["token"]
    base = f"{API}/sessions/{token}"
    device = client.post(
        f"{base}/device", json=examples["/sessions/{token}/device"]["post"]
    )
    assert device.status_code == 200, device.json
    assert client.get(f"{base}/blocks/0").status_code == 200
    put = client.put(
        f"{base}/trials/0", json=examples["/sessions/{token}/trials/{position}"]["put"]
    )
    assert put.status_code == 200 and put.json["stored"], put.json
    batch = examples["/sessions/{token}/responses"]["post"]
    answer = client.post(f"{base}/responses", json=batch)
    # The batch example repeats position 0 with the same answer: a replay.
    assert answer.json["results"] == [{"position": 0, "status": 200, "replay": True}]
    event = client.post(
        f"{base}/events", json=examples["/sessions/{token}/events"]["post"]
    )
    assert event.status_code == 201
    complete = client.post(
        f"{base}/complete", json=examples["/sessions/{token}/complete"]["post"]
    )
    # Not every trial is answered yet: refused with the positions missing.
    assert complete.status_code == 409
    assert complete.json["error"]["missing"][0] == 1


def _call(client, method: str, path: str, **kwargs):
    answer = getattr(client, method)(path, **kwargs)
    check_answer(method, path, answer)
    return answer


def test_answers_of_a_whole_session_match_the_response_schemas(app, client, make_study):
    study = small_study(make_study, platform="mturk", timing={"staircase": True})
    p = Participant(client, study, "W1")
    answer = p.start()
    check_answer("post", f"{API}/studies/{study.slug}/sessions", answer)
    assert answer.status_code == 201
    check_answer("post", f"{API}/studies/{study.slug}/sessions", p.start())
    base = f"{API}/sessions/{p.token}"
    check_answer("get", base, p.refresh())
    check_answer("post", f"{base}/device", p.device())
    for block in p.state["blocks"]:
        served = _call(client, "get", f"{base}/blocks/{block['block']}")
        for trial in served.json["trials"]:
            image = _call(client, "get", trial["image_url"])
            assert image.data.startswith(b"\x89PNG")
            truth = "real" if p.truth(trial["position"]) else "generated"
            body = response_body(
                truth,
                intended_frames=trial["exposure_frames"],
                achieved_frames=trial["exposure_frames"],
            )
            position = trial["position"]
            answer = _call(client, "put", f"{base}/trials/{position}", json=body)
            assert answer.json["stored"]
    body = {"responses": [{"position": 0, **response_body()}, {"position": 10**6}]}
    answer = _call(client, "post", f"{base}/responses", json=body)
    assert [r["status"] for r in answer.json["results"]][1] in (400, 404)
    _call(client, "post", f"{base}/events", json={"kind": "focus"})
    p.refresh()
    answer = _call(client, "post", f"{base}/complete", json={})
    assert answer.json["status"] == "completed"
    assert answer.json["mturk"]["assignmentId"] == "AW1"
    _call(client, "get", base)
    _call(client, "get", f"{API}/openapi.json")


def test_a_screen_out_acknowledgement_matches_the_schema(app, client, make_study):
    study = small_study(make_study, platform="direct")
    p = Participant(client, study, "D1")
    p.start()
    p.device()
    base = f"{API}/sessions/{p.token}"
    answers = []
    for block in p.state["blocks"]:
        served = p.block(block["block"])
        for trial in served.json["trials"]:
            wrong = "generated" if p.truth(trial["position"]) else "real"
            path = f"{base}/trials/{trial['position']}"
            answers.append(_call(client, "put", path, json=response_body(wrong)))
            if answers[-1].status_code != 200 or answers[-1].json["screened_out"]:
                break
        else:
            continue
        break
    last = answers[-1]
    assert last.json["screened_out"] and last.json["completion"]["status"] == (
        "screened_out"
    )
    _call(client, "post", f"{base}/complete", json={})
    _call(client, "get", f"{base}/blocks/1")  # 403: the session has ended


def test_refusals_have_documented_statuses_and_the_envelope(app, client, make_study):
    study = small_study(make_study, platform="prolific")
    p = Participant(client, study, "P1")
    slug_path = f"{API}/studies/{study.slug}/sessions"
    _call(client, "post", slug_path, data=b"{not json", content_type="application/json")
    _call(
        client,
        "post",
        f"{API}/studies/nope/sessions",
        json={"params": {}, "consent": True},
    )
    assert p.start(consent=False).status_code == 422
    check_answer("post", slug_path, p.start(consent=False))
    p.start()
    base = f"{API}/sessions/{p.token}"
    unknown = f"{API}/sessions/{'A' * 43}"
    _call(client, "get", unknown)
    _call(client, "get", f"{base}/blocks/0")  # 422: no device check yet
    p.device()
    _call(client, "get", f"{base}/blocks/99")  # 404
    _call(client, "get", f"{base}/blocks/2")  # 422: finish block 0 first
    _call(client, "put", f"{base}/trials/5", json=response_body())  # 422: not served
    _call(client, "get", f"{base}/blocks/0")
    _call(client, "put", f"{base}/trials/0", json=response_body("real"))
    conflict = _call(client, "put", f"{base}/trials/0", json=response_body("generated"))
    assert conflict.status_code == 409
    _call(client, "put", f"{base}/trials/0", json=response_body(rt_ms=-1))
    _call(client, "put", f"{base}/trials/0", json=[1, 2])
    _call(client, "put", f"{base}/trials/999", json=response_body())
    _call(client, "post", f"{base}/events", json={"kind": "dance"})
    missing = _call(client, "post", f"{base}/complete", json={})
    assert missing.status_code == 409 and missing.json["error"]["missing"]
    _call(client, "get", f"{API}/stimuli/not-a-signed-value")
    big = {"kind": "focus", "data": {"x": "y" * 70_000}}
    too_large = _call(client, "post", f"{base}/events", json=big)
    assert too_large.status_code == 413


def test_unknown_api_paths_and_methods_answer_the_envelope(client):
    for method, path, status in (
        ("get", f"{API}/nothing/here", 404),
        ("delete", f"{API}/sessions/{'A' * 43}", 405),
        ("get", f"{API}/sessions/{'A' * 43}/blocks/-1", 404),
    ):
        answer = getattr(client, method)(path)
        assert answer.status_code == status
        assert (
            schema_errors(spec()["components"]["schemas"]["Error"], answer.json) == []
        )
        assert answer.json["error"]["status"] == status


def test_operations_are_found_for_request_paths():
    operation = operation_for("put", f"{API}/sessions/abc/trials/3")
    assert operation["operationId"] == "response"
    with pytest.raises(AssertionError):
        operation_for("delete", f"{API}/sessions/abc")
