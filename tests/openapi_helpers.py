"""Checking real answers against the served OpenAPI description.

:func:`operation_for` finds the described operation of a request path such as
``/api/v1/sessions/<token>/trials/3``; :func:`check_answer` asserts that an
answer's status is documented for that operation and that its JSON body
matches the documented schema (JSON Schema 2020-12, OpenAPI 3.1's dialect).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from study_server.openapi import API_BASE, build_spec


@cache
def spec() -> dict[str, Any]:
    return build_spec()


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in spec()["paths"]:
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        patterns.append((re.compile(f"^{regex}$"), template))
    return patterns


def template_of(path: str) -> str:
    """The described path template (``/sessions/{token}``) of a request path."""
    path = path.split("?", 1)[0].removeprefix(API_BASE)
    for pattern, template in _path_patterns():
        if pattern.match(path):
            return template
    raise AssertionError(f"{path}: no path of the OpenAPI description matches")


def operation_for(method: str, path: str) -> dict[str, Any]:
    """The described operation for ``method`` on the request ``path``."""
    item = spec()["paths"][template_of(path)]
    assert method.lower() in item, f"{method} {path} is not described"
    return item[method.lower()]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` refs resolve."""
    rooted = {"allOf": [schema], "components": spec()["components"]}
    return Draft202012Validator(
        rooted, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Messages of every way ``value`` breaks ``schema`` (empty when valid)."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator(schema).iter_errors(value)
    ]


def request_schema(method: str, path: str) -> dict[str, Any]:
    """The JSON schema of the request body of an operation."""
    body = operation_for(method, path)["requestBody"]
    return body["content"]["application/json"]["schema"]


def check_answer(method: str, path: str, answer: Any) -> None:
    """Assert that a Flask test-client ``answer`` is as described.

    The status must be one the operation documents; a JSON answer must match
    the status's schema, and the content type must be the documented one.
    """
    operation = operation_for(method, path)
    status = str(answer.status_code)
    assert status in operation["responses"], (
        f"{method} {path} answered {status}, which is not documented "
        f"(documented: {', '.join(operation['responses'])}): {answer.data[:300]!r}"
    )
    content = operation["responses"][status].get("content", {})
    mimetype = answer.mimetype
    assert mimetype in content, (
        f"{method} {path} {status}: content type {mimetype!r}, documented "
        f"{list(content)}"
    )
    if mimetype == "application/json":
        errors = schema_errors(content[mimetype]["schema"], answer.get_json())
        assert not errors, f"{method} {path} {status}: " + "; ".join(errors)
