"""The columns of the per-trial and per-session exports (DESIGN §7).

This module is the one contract between the study server's exports, the
``analysis export`` command and the analysis readers: all of them use these
names, in this order, with these types. It imports nothing from Flask so the
analysis package can use it alone.

Types are pandas dtype names; timestamps are UTC, written as ISO-8601 with an
explicit ``+00:00`` offset.
"""

from __future__ import annotations

# (column, pandas dtype, meaning)
TRIAL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("study", "string", "study slug"),
    ("dataset", "string", "image domain of the study"),
    ("session", "string", "public session id (not the participant's token)"),
    ("participant", "string", "pseudonymous participant id (keyed hash)"),
    ("platform", "string", "prolific, mturk or direct"),
    ("session_status", "string", "status of the session at export time"),
    (
        "model",
        "string",
        "condition: the session's model (between design); "
        "the stimulus's model, empty for real images (within design)",
    ),
    ("source", "string", "'real' or the model that generated the stimulus"),
    ("stimulus", "string", "stimulus id: first 16 hex digits of its content digest"),
    ("is_real", "boolean", "the stimulus is a real image"),
    ("kind", "string", "practice, main or check"),
    ("position", "Int64", "0-based order of the trial in the session"),
    ("block", "Int64", "0-based block number"),
    ("response", "string", "real or generated; empty when unanswered"),
    ("correct", "boolean", "response matches the truth; empty when unanswered"),
    ("rt_ms", "Float64", "response time from the response screen's onset, ms"),
    ("exposure_ms", "Float64", "intended exposure, ms (0 = until response)"),
    ("intended_frames", "Int64", "intended exposure in frames"),
    ("achieved_frames", "Int64", "frames the stimulus was actually shown"),
    ("frame_interval_ms", "Float64", "measured refresh interval, ms"),
    ("onset_ms", "Float64", "stimulus onset, page clock (performance.now), ms"),
    ("offset_ms", "Float64", "stimulus offset, page clock (performance.now), ms"),
    ("visibility_lost", "boolean", "the page was hidden during the trial"),
    ("focus_lost", "boolean", "the window lost focus during the trial"),
    ("timing_invalid", "boolean", "achieved frames differ from intended frames"),
    ("served_at", "string", "UTC time the trial's block was sent, ISO-8601"),
    ("responded_at", "string", "UTC time the response was stored, ISO-8601"),
)

SESSION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("study", "string", "study slug"),
    ("dataset", "string", "image domain of the study"),
    ("session", "string", "public session id"),
    ("participant", "string", "pseudonymous participant id (keyed hash)"),
    ("platform", "string", "prolific, mturk or direct"),
    (
        "status",
        "string",
        "active, completed, screened_out, returned, timed_out, excluded or abandoned",
    ),
    ("model", "string", "assigned model (between design); empty otherwise"),
    ("key_mapping", "string", "which keys meant real and generated, e.g. f=real"),
    ("exposure_ms", "Float64", "intended exposure at session start, ms"),
    ("frame_interval_ms", "Float64", "refresh interval measured by the device check"),
    ("n_trials", "Int64", "trials planned for the session (all kinds)"),
    ("n_answered", "Int64", "trials answered"),
    ("checks_failed", "Int64", "attention checks answered wrongly"),
    ("exclusion_reason", "string", "why the session was excluded, if it was"),
    ("user_agent", "string", "browser user agent"),
    ("screen_width", "Int64", "window width in CSS pixels"),
    ("screen_height", "Int64", "window height in CSS pixels"),
    ("started_at", "string", "UTC, ISO-8601"),
    ("last_seen_at", "string", "UTC, ISO-8601"),
    ("completed_at", "string", "UTC, ISO-8601; empty unless completed"),
    (
        "answers",
        "string",
        "free-text answers from the consent and debrief pages, as a JSON object",
    ),
)

EVENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("study", "string", "study slug"),
    ("session", "string", "public session id; empty for study-level events"),
    ("kind", "string", "what happened, e.g. session_start, reload, status_change"),
    ("actor", "string", "participant, system or researcher:<username>"),
    ("data", "string", "details as a JSON object"),
    ("created_at", "string", "UTC, ISO-8601"),
)


def names(columns: tuple[tuple[str, str, str], ...]) -> list[str]:
    """Return the column names of a schema, in order."""
    return [name for name, _, _ in columns]


def dtypes(columns: tuple[tuple[str, str, str], ...]) -> dict[str, str]:
    """Return ``{column: pandas dtype}`` for reading an export with pandas."""
    return {name: dtype for name, dtype, _ in columns}
