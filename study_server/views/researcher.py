"""Researcher pages under ``/researcher``: login, dashboard, lifecycle, exports.

Every URL of this blueprint except the login page needs a logged-in
researcher: pages redirect to the login page, JSON answers 401. Every POST
carries a CSRF token (Flask-WTF), checked here for this blueprint only; the
participant API authenticates with session tokens instead of cookies and is
left alone. Logins, failed logins and exports are written to the audit logger
``study_server.audit``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_user,
    logout_user,
)
from flask_wtf.csrf import CSRFError, CSRFProtect

from ..db import db
from ..errors import StudyError, Unauthorized, envelope, handle_study_error
from ..models import SESSION_STATUSES, Researcher
from ..services import accounts, dashboard, exports, lifecycle
from ..services.pseudonyms import Pseudonymizer, pseudonym_key

bp = Blueprint("researcher", __name__, url_prefix="/researcher")
login_manager = LoginManager()
csrf = CSRFProtect()
audit = logging.getLogger("study_server.audit")

#: Endpoints open to anonymous visitors.
PUBLIC_ENDPOINTS = frozenset({"researcher.login"})
#: Seconds between two refreshes of the dashboard.
REFRESH_S = 5
SESSIONS_PER_PAGE = 50


class ResearcherUser(UserMixin):
    """The logged-in researcher as Flask-Login sees it.

    The id stored in the cookie carries a fingerprint of the password hash, so
    changing a password ends every login made with the old one.
    """

    def __init__(self, researcher: Researcher):
        self.researcher_id = researcher.id
        self.username = researcher.username
        self.fingerprint = _fingerprint(researcher.password_hash)

    def get_id(self) -> str:
        return f"{self.researcher_id}:{self.fingerprint}"

    @property
    def actor(self) -> str:
        return lifecycle.researcher_actor(self.username)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@login_manager.user_loader
def _load_user(user_id: str) -> ResearcherUser | None:
    number, _, fingerprint = user_id.partition(":")
    if not number.isdigit():
        return None
    researcher = db.session.get(Researcher, int(number))
    if researcher is None or _fingerprint(researcher.password_hash) != fingerprint:
        return None
    return ResearcherUser(researcher)


def _wants_json() -> bool:
    return request.path.endswith(".json")


@login_manager.unauthorized_handler
def _unauthorized() -> Any:
    if _wants_json():
        return envelope(401, "unauthorized", "Log in as a researcher first.")
    if request.method != "GET":
        # A form sent without a login is not replayed after it.
        return redirect(url_for("researcher.login"))
    return redirect(url_for("researcher.login", next=request.full_path.rstrip("?")))


class _SessionInterface(SecureCookieSessionInterface):
    """Session cookies are ``Secure`` by configuration or when served over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = bool(app.config["SESSION_COOKIE_SECURE"])
        return configured or (has_request_context() and request.is_secure)


@bp.before_request
def _guard() -> Any:
    # CSRF first, so that even the login form (login CSRF) is protected.
    csrf.protect()
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


@bp.errorhandler(StudyError)
def _study_error(exc: StudyError) -> Any:
    if _wants_json():
        return envelope(exc.status, exc.code, exc.message, exc.field, **exc.extra)
    return handle_study_error(exc)


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Any:
    audit.warning("CSRF check failed on %s: %s", request.path, exc.description)
    message = (
        "This form has expired or did not come from this site "
        f"({exc.description}). Go back, reload the page and try again."
    )
    if _wants_json():
        return envelope(400, "csrf", message)
    return render_template(
        "error.html", status=400, title="Form refused", message=message
    ), 400


def _safe_next(target: str | None, default: str) -> str:
    """Follow ``next`` only to a researcher page of this site (no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    prefix = bp.url_prefix or "/researcher"
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix):
        return default
    return target


# --- login ------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form and check a login."""
    next_url = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(next_url, url_for(".index")))
        return render_template("researcher/login.html", next_url=next_url)

    config = current_app.config
    username = request.form.get("username", "").strip()
    try:
        researcher = accounts.authenticate(
            username,
            request.form.get("password", ""),
            max_failures=config["LOGIN_MAX_FAILURES"],
            lockout_s=config["LOGIN_LOCKOUT_S"],
            remote=request.remote_addr or "",
        )
    except Unauthorized as exc:
        page = render_template(
            "researcher/login.html",
            next_url=next_url,
            username=username,
            error=exc.message,
        )
        return page, 401

    # A fresh session at login: nothing chosen before it (a planted cookie,
    # the old CSRF token) survives into the logged-in session.
    session.clear()
    login_user(ResearcherUser(researcher))
    return redirect(_safe_next(next_url, url_for(".index")))


@bp.post("/logout")
def logout() -> Any:
    """End the researcher's login."""
    audit.info("logout %r", current_user.username)
    logout_user()
    session.clear()
    return redirect(url_for(".login"))


# --- pages ------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    """List the studies with their status and sessions."""
    return render_template("researcher/index.html", studies=dashboard.study_overview())


@bp.get("/studies/<slug>")
def study_dashboard(slug: str) -> Any:
    """The live dashboard of one study."""
    study = lifecycle.get_study(slug)
    return render_template(
        "researcher/dashboard.html",
        study=study,
        actions=lifecycle.allowed_actions(study.status),
        refresh_s=REFRESH_S,
        export_formats=_export_formats(),
        participant_link=_participant_link(slug),
    )


def _participant_link(slug: str) -> str:
    if "participant.arrive" in current_app.view_functions:
        return url_for("participant.arrive", slug=slug, _external=True)
    return request.host_url.rstrip("/") + f"/s/{slug}"


@bp.get("/studies/<slug>/dashboard.json")
def dashboard_json(slug: str) -> Any:
    """The dashboard's figures, fetched by the page every few seconds."""
    response = jsonify(dashboard.dashboard(db.engine, slug))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/studies/<slug>/sessions")
def sessions(slug: str) -> Any:
    """One page of the study's sessions, with the actions that correct them."""
    study = lifecycle.get_study(slug)
    page = request.args.get("page", "1")
    # Any number is accepted: list_sessions shows the last page past the end.
    if page.isascii() and page.isdigit():
        page_number = int(page) if len(page) <= 9 else 10**9
    else:
        page_number = 1
    listing = dashboard.list_sessions(
        study,
        status=request.args.get("status") or None,
        search=request.args.get("q", "").strip() or None,
        page=page_number if page_number > 0 else 1,
        per_page=SESSIONS_PER_PAGE,
    )
    return render_template(
        "researcher/sessions.html",
        study=study,
        listing=listing,
        statuses=SESSION_STATUSES,
        reasons=lifecycle.SUGGESTED_REASONS,
    )


# --- actions ------------------------------------------------------------------


@bp.post("/studies/<slug>/status")
def study_status(slug: str) -> Any:
    """Open, pause or close a study."""
    action = request.form.get("action", "")
    study = lifecycle.change_study_status(slug, action, current_user.actor)
    flash(f"Study {study.slug} is now {study.status}.")
    return redirect(url_for(".study_dashboard", slug=slug))


@bp.post("/studies/<slug>/sessions/<public_id>/status")
def session_status(slug: str, public_id: str) -> Any:
    """Mark a session returned, timed out or excluded."""
    status = request.form.get("status", "")
    reason = request.form.get("reason")
    lifecycle.mark_session(slug, public_id, status, current_user.actor, reason)
    flash(f"Session {public_id} is now {status}; its place is free again.")
    default = url_for(".sessions", slug=slug)
    return redirect(_safe_next(request.form.get("next"), default))


# --- exports ----------------------------------------------------------------


def _export_formats() -> list[str]:
    return list(exports.FORMATS) if exports.pyarrow_available() else ["csv"]


def _pseudonymizer() -> Pseudonymizer:
    include = request.args.get("platform_ids") in ("1", "true", "on")
    return Pseudonymizer(None if include else pseudonym_key(current_app.config))


def _download(chunks: Any, filename: str, mimetype: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    # Tell a buffering reverse proxy (nginx) to pass the stream on as it comes.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _audit_export(slug: str, what: str, names: Pseudonymizer) -> None:
    audit.info(
        "export %s of study %r by %r (%s)",
        what,
        slug,
        current_user.username,
        "platform ids" if names.includes_platform_ids else "pseudonyms",
    )


@bp.get("/studies/<slug>/export/<table>.csv")
def export_table(slug: str, table: str) -> Any:
    """Download one table (trials, sessions or events) as CSV, streamed."""
    lifecycle.get_study(slug)
    names = _pseudonymizer()
    chunks = exports.stream_table_csv(db.engine, slug, table, names)
    _audit_export(slug, table, names)
    return _download(chunks, f"{slug}-{table}.csv", "text/csv")


@bp.get("/studies/<slug>/export.zip")
def export_zip(slug: str) -> Any:
    """Download the study's Psych-DS dataset as a zip archive, streamed."""
    lifecycle.get_study(slug)
    formats = exports.resolve_formats(request.args.get("format", "csv"))
    names = _pseudonymizer()
    chunks = exports.stream_dataset_zip(
        db.engine, slug, names, formats=formats, authors=[current_user.username]
    )
    _audit_export(slug, f"dataset ({'+'.join(formats)})", names)
    return _download(chunks, f"{slug}-dataset.zip", "application/zip")


@functools.cache
def _plotly_js() -> tuple[bytes, str]:
    from plotly.offline import get_plotlyjs

    body = get_plotlyjs().encode()
    return body, hashlib.sha256(body).hexdigest()[:20]


@bp.get("/assets/plotly.min.js")
def plotly_js() -> Any:
    """plotly.js from the installed plotly package: no CDN, cached by browsers."""
    body, etag = _plotly_js()
    response = Response(body, mimetype="text/javascript")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    """Register the blueprint, the login manager and CSRF protection on ``app``."""
    # CSRF is checked in this blueprint's _guard; a global check would refuse
    # the participant API's token-authenticated JSON and beacon requests.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    app.session_interface = _SessionInterface()
    app.register_blueprint(bp)
