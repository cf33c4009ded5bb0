"""The runner's modules in Chromium: timing, keys, backoff, the send queue.

Each test imports the real ES modules from the app's static folder into a
page on the live server and checks their results against values computed
here (numpy, the server's own rounding rule).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def page(live_server, context):
    """A page on the app's origin, so the modules import from /static/js/."""
    page = context.new_page()
    page.goto(f"{live_server}/static/css/study.css")
    return page


def run(page, module: str, body: str, arg=None):
    """Evaluate ``body`` with the module's exports bound to ``m``."""
    script = (
        f"async (arg) => {{ const m = await import('/static/js/{module}'); {body} }}"
    )
    return page.evaluate(script, arg)


def test_interval_summary_leaves_out_skipped_frames(page):
    rng = np.random.default_rng(3)
    deltas = 16.667 + rng.normal(0, 0.05, 150)
    deltas[[20, 90]] = 33.3  # two skipped frames
    stamps = np.concatenate([[1000.0], 1000.0 + np.cumsum(deltas)])
    got = run(page, "timing.js", "return m.summariseIntervals(arg);", stamps.tolist())
    kept = np.delete(deltas, [20, 90])
    assert got["n_frames"] == 148
    assert got["n_outliers"] == 2
    assert got["frame_interval_ms"] == pytest.approx(kept.mean(), abs=1e-3)
    assert got["frame_interval_sd_ms"] == pytest.approx(kept.std(ddof=1), abs=1e-3)
    assert got["refresh_hz"] == pytest.approx(1000 / kept.mean(), abs=0.01)


def test_refresh_measurement_in_headless_chromium(page):
    got = run(page, "timing.js", "return m.measureRefresh(120);")
    assert got["n_frames"] >= 120
    # Headless Chromium draws at 60 Hz.
    assert got["frame_interval_ms"] == pytest.approx(1000 / 60, abs=0.5)


def test_frames_for_equals_server_rounding(page):
    """framesFor in timing.js is the server's exposure_frames rule."""
    from study_server.services.timing import exposure_frames

    # The grid includes exact halves (25 ms at 10 ms per frame).
    grid = [
        (ms, interval)
        for ms in (0, 1, 8, 8.335, 16, 25, 33.35, 50, 100, 500, 1000, 12345.6)
        for interval in (4.0, 6.944, 8.333, 10.0, 16.67, 16.683, 33.33)
    ]
    got = run(
        page, "timing.js", "return arg.map(([ms, i]) => m.framesFor(ms, i));", grid
    )
    assert got == [exposure_frames(ms, interval) for ms, interval in grid]


def test_phases_follow_each_other_in_the_same_frame(page):
    got = run(
        page,
        "timing.js",
        """
        const interval = (await m.measureRefresh(60)).frame_interval_ms;
        const phases = [3, 6, 1].map((frames, i) => ({
          name: 'p' + i, frames, draw: () => {} }));
        phases.push({ name: 'last', frames: 0, draw: () => {} });
        const shown = await m.runPhases(phases, interval);
        return { interval, phases: shown.phases };
        """,
    )
    phases = got["phases"]
    assert [p["name"] for p in phases] == ["p0", "p1", "p2", "last"]
    for before, after in itertools.pairwise(phases):
        assert after["onset"] == before["offset"]
        elapsed = (before["offset"] - before["onset"]) / got["interval"]
        assert before["achieved"] == round(elapsed)
        assert before["achieved"] >= before["intended"]
    assert phases[-1]["offset"] is None


def test_key_mapping_orders_buttons_like_the_keyboard(page):
    got = run(
        page,
        "keys.js",
        """
        const fj = new m.KeyMapping({ real: 'f', generated: 'j' });
        const jf = new m.KeyMapping({ real: 'j', generated: 'f' });
        const key = (k, more = {}) => new KeyboardEvent('keydown', { key: k, ...more });
        let refused = null;
        try { new m.KeyMapping({ real: 'f', generated: 'F' }); }
        catch (error) { refused = error.message; }
        return {
          fj: fj.ordered(), jf: jf.ordered(),
          upper: jf.responseFor(key('F')), other: fj.responseFor(key('k')),
          repeat: fj.responseFor(key('f', { repeat: true })),
          ctrl: fj.responseFor(key('j', { ctrlKey: true })),
          refused,
        };
        """,
    )
    assert got["fj"] == ["real", "generated"]
    assert got["jf"] == ["generated", "real"]
    assert got["upper"] == "generated"
    assert got["other"] is None
    assert got["repeat"] is None
    assert got["ctrl"] is None
    assert "both responses" in got["refused"]


def test_backoff_grows_and_is_jittered(page):
    got = run(
        page,
        "api.js",
        """
        return [0, 1, 2, 3, 4, 5, 6, 10].map((n) =>
          [m.backoffDelay(n, () => 0), m.backoffDelay(n, () => 0.999999)]);
        """,
    )
    for attempt, (low, high) in zip([0, 1, 2, 3, 4, 5, 6, 10], got, strict=True):
        ceiling = min(15_000, 400 * 2**attempt)
        assert low == pytest.approx(ceiling / 2)
        assert high == pytest.approx(ceiling, rel=1e-5)


def test_beacon_chunks_stay_under_the_beacon_limit(page):
    responses = [
        {"position": i, "response": "real", "rt_ms": 500.0 + i, "key": "f" * 32}
        for i in range(1200)
    ]
    chunks = run(page, "api.js", "return m.beaconChunks(arg);", responses)
    assert [r for chunk in chunks for r in chunk] == responses
    for chunk in chunks:
        assert len(chunk) <= 100
        assert len(json.dumps({"responses": chunk})) < 48 * 1024


def test_exposure_schedule_takes_the_servers_staircase_value(page):
    got = run(
        page,
        "staircase.js",
        """
        const fixed = new m.ExposureSchedule({ staircase: null });
        const stair = new m.ExposureSchedule({ staircase: { frames: 12 } });
        const main = { kind: 'main', exposure_frames: 10 };
        const practice = { kind: 'practice', exposure_frames: 30 };
        const out = [fixed.framesFor(main), stair.framesFor(main)];
        out.push(stair.framesFor(practice));
        stair.update({ next_exposure_frames: 14 }, 5);
        out.push(stair.framesFor(main));
        stair.update({ next_exposure_frames: null }, 6);
        out.push(stair.framesFor(main));
        out.push(fixed.waitsFor(main), stair.waitsFor(main), stair.waitsFor(practice));
        return out;
        """,
    )
    assert got == [10, 12, 30, 14, 14, False, True, False]


QUEUE_SCRIPT = """
const api = new m.Api('/fake/v1');
const queue = new m.SendQueue(api, 'tok');
const answers = [queue.addResponse(1, { response: 'real' }),
                 queue.addResponse(2, { response: 'generated' })];
const stored = JSON.parse(localStorage.getItem('realism-runner:v1:tok:queue'));
await queue.drain();
return { stored: stored.map((i) => i.position), answers: await Promise.all(answers),
         left: localStorage.getItem('realism-runner:v1:tok:queue'),
         refused: queue.refused.map((r) => [r.item.position, r.status]) };
"""


def test_send_queue_retries_keeps_order_and_empties_storage(page):
    calls: list[tuple[str, int]] = []

    def answer(route):
        position = int(route.request.url.rsplit("/", 1)[1])
        calls.append((route.request.method, position))
        # Position 1 fails twice (server trouble), then is stored; position
        # 2 conflicts with a stored answer and is dropped.
        if position == 1 and len(calls) <= 2:
            route.fulfill(status=503, json={"error": {"status": 503}})
        elif position == 2:
            route.fulfill(status=409, json={"error": {"status": 409, "message": "x"}})
        else:
            route.fulfill(json={"position": position, "stored": True, "replay": False})

    page.route("**/fake/v1/sessions/tok/trials/*", answer)
    got = run(page, "api.js", QUEUE_SCRIPT)
    assert got["stored"] == [1, 2]
    assert calls == [("PUT", 1), ("PUT", 1), ("PUT", 1), ("PUT", 2)]
    assert got["answers"][0] == {"position": 1, "stored": True, "replay": False}
    assert "refused" in got["answers"][1]
    assert got["refused"] == [[2, 409]]
    assert got["left"] is None


def test_send_queue_halts_when_the_session_is_over(page):
    page.route(
        "**/fake/v1/sessions/tok/trials/*",
        lambda route: route.fulfill(status=403, json={"error": {"status": 403}}),
    )
    got = run(
        page,
        "api.js",
        """
        const queue = new m.SendQueue(new m.Api('/fake/v1'), 'tok');
        queue.addResponse(1, { response: 'real' });
        const halt = await queue.drain();
        return [halt.status, queue.pending,
          localStorage.getItem('realism-runner:v1:tok:queue') !== null];
        """,
    )
    # Halted: the answer stays stored in the browser, nothing is retried.
    assert got == [403, 1, True]
