"""Exposure in whole frames, the device check, and the adaptive staircase.

The browser draws in ``requestAnimationFrame`` callbacks, so an exposure can
only last a whole number of frames. The device check measures the frame
interval; the intended exposure is rounded to the nearest whole number of
frames (at least one, unless the exposure is 0 = until response), and the
achieved exposure is that number of frames times the interval.

The staircase (DESIGN §4, HYPE-style time threshold) adapts the exposure in
frames with a 1-up/N-down rule (:func:`staircase_step`). The server applies
the rule to the stored main-trial responses in position order and returns the
next exposure with every acknowledgement. The browser cannot apply the rule
itself (it never learns whether an answer was right, nor which trials are
checks), so with a staircase it waits briefly for that value before each main
trial and keeps the last one when the server is out of reach; the trial's
``intended_frames`` records what was actually shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import OutOfRange
from ..studyfile import Staircase
from . import validate

#: The device check must measure at least this many frames (DESIGN §4).
MIN_DEVICE_FRAMES = 60
# 2 ms to 100 ms per frame: displays from 10 Hz to 500 Hz.
FRAME_INTERVAL_RANGE = (2.0, 100.0)
DEVICE_FIELDS = ("frame_interval_ms", "n_frames", "refresh_hz", "frame_interval_sd_ms")


def exposure_frames(exposure_ms: float, frame_interval_ms: float) -> int:
    """Return ``exposure_ms`` rounded to whole frames of ``frame_interval_ms``.

    Halves round up (``floor(x + 0.5)``), not to even as Python's ``round``
    does. A timed exposure lasts at least one frame; 0 (until response) stays 0.
    """
    if exposure_ms <= 0:
        return 0
    if frame_interval_ms <= 0:
        raise ValueError(f"frame_interval_ms: got {frame_interval_ms}; must be > 0")
    return max(1, math.floor(exposure_ms / frame_interval_ms + 0.5))


@dataclass(frozen=True)
class DeviceCheck:
    """The browser's measurement of the display's frame interval."""

    frame_interval_ms: float
    n_frames: int
    refresh_hz: float | None = None
    frame_interval_sd_ms: float | None = None


def parse_device_check(body: dict[str, Any]) -> DeviceCheck:
    """Validate a device-check body; raise Malformed / OutOfRange naming the field."""
    validate.reject_unknown(body, DEVICE_FIELDS, "device check")
    low, high = FRAME_INTERVAL_RANGE
    interval: Any = validate.number(body, "frame_interval_ms", low=low, high=high)
    n_frames: Any = validate.integer(
        body, "n_frames", low=MIN_DEVICE_FRAMES, high=1_000_000
    )
    return DeviceCheck(
        frame_interval_ms=interval,
        n_frames=n_frames,
        refresh_hz=validate.number(
            body, "refresh_hz", low=1000 / high, high=1000 / low, required=False
        ),
        frame_interval_sd_ms=validate.number(
            body, "frame_interval_sd_ms", low=0, high=1000, required=False
        ),
    )


@dataclass(frozen=True)
class StaircaseRule:
    """A 1-up/N-down staircase on exposure in frames.

    After ``down_after`` correct answers in a row the exposure shortens by
    ``step_frames``; after any error it lengthens by ``step_frames``; it stays
    within ``[min_frames, max_frames]``. With ``down_after = 3`` it converges
    near 79.4% correct (Levitt 1971, J. Acoust. Soc. Am. 49:467, table I).
    """

    min_frames: int
    max_frames: int
    step_frames: int
    down_after: int

    @classmethod
    def from_settings(cls, stair: Staircase, frame_interval_ms: float) -> StaircaseRule:
        """Turn the study's millisecond limits into frames of this display."""
        low = exposure_frames(stair.min_ms, frame_interval_ms)
        high = max(low, exposure_frames(stair.max_ms, frame_interval_ms))
        return cls(low, high, stair.step_frames, stair.down_after)


def staircase_step(
    frames: int, streak: int, correct: bool, rule: StaircaseRule
) -> tuple[int, int]:
    """Apply one answer to the staircase; return the next ``(frames, streak)``.

    ``streak`` counts correct answers in a row since the last change. This is
    the only implementation of the rule on the server; the browser runner
    mirrors it.
    """
    if not correct:
        return min(rule.max_frames, frames + rule.step_frames), 0
    streak += 1
    if streak >= rule.down_after:
        return max(rule.min_frames, frames - rule.step_frames), 0
    return frames, streak


def start_staircase(stair: Staircase, frame_interval_ms: float) -> dict[str, Any]:
    """Return the initial staircase state stored on a session."""
    rule = StaircaseRule.from_settings(stair, frame_interval_ms)
    start = exposure_frames(stair.start_ms, frame_interval_ms)
    start = min(rule.max_frames, max(rule.min_frames, start))
    return {
        "frames": start,
        "streak": 0,
        # The last main-trial position applied, so each answer counts once.
        "through": -1,
        "direction": 0,
        "reversals": [],
        "min_frames": rule.min_frames,
        "max_frames": rule.max_frames,
        "step_frames": rule.step_frames,
        "down_after": rule.down_after,
    }


def advance_staircase(
    state: dict[str, Any], answers: Iterable[tuple[int, bool]]
) -> dict[str, Any]:
    """Apply ``(position, correct)`` answers in order; return the new state.

    Answers at or before ``state["through"]`` are skipped, so applying the same
    stored responses twice changes nothing. A reversal is a change of the
    exposure in the direction opposite to the previous change; the exposures
    at reversals are kept for the threshold estimate.
    """
    rule = StaircaseRule(
        state["min_frames"], state["max_frames"], state["step_frames"],
        state["down_after"],
    )  # fmt: skip
    state = {**state, "reversals": list(state["reversals"])}
    for position, correct in answers:
        if position <= state["through"]:
            continue
        before = state["frames"]
        state["frames"], state["streak"] = staircase_step(
            before, state["streak"], correct, rule
        )
        state["through"] = position
        change = (state["frames"] > before) - (state["frames"] < before)
        if change and state["direction"] and change != state["direction"]:
            state["reversals"].append(before)
        if change:
            state["direction"] = change
    return state


def public_staircase(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The staircase state as the browser sees it."""
    if state is None:
        return None
    keys = ("frames", "streak", "min_frames", "max_frames", "step_frames", "down_after")
    return {key: state[key] for key in keys}


def check_exposure_ready(exposure_frames_: int | None) -> int:
    """Return the session's exposure in frames, or refuse before the device check."""
    if exposure_frames_ is None:
        raise OutOfRange(
            "the device check has not been done: send its result to "
            "POST /api/v1/sessions/<token>/device before fetching trials",
            field="device",
        )
    return exposure_frames_
