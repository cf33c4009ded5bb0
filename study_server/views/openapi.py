"""The OpenAPI description of the participant API, served as JSON."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from ..openapi import API_BASE, build_spec

bp = Blueprint("openapi", __name__, url_prefix=API_BASE)


@cache
def _spec() -> dict[str, Any]:
    return build_spec()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 description of /api/v1."""
    return jsonify(_spec())
