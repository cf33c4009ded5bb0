"""Participant pages: the arrival URL given to recruitment platforms."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from ..services.arrival import Redirect, arrival_page
from .api import API_BASE

bp = Blueprint("participant", __name__)


@bp.get("/")
def index() -> str:
    """A neutral front page: participants need their platform's link."""
    return render_template("index.html")


@bp.get("/s/<slug>")
def arrive(slug: str) -> Response | tuple[str, int]:
    """Show the runner, or the page that fits this participant and study."""
    page = arrival_page(
        slug,
        request.args,
        request.headers.get("User-Agent", ""),
        request.path,
        API_BASE,
    )
    if isinstance(page, Redirect):
        return redirect(page.location, code=302)
    return render_template(page.template, **page.context), page.status
