"""Benchmark: frame-counted presentation against setTimeout, in headless Chromium.

The runner's own trial code (``static/js/trial.js`` and ``timing.js``) shows
solid-colour stimuli for 1, 3, 6 and 30 frames; the same number of trials is
shown with the common alternative, ``setTimeout(frames x interval)``, in one
shuffled sequence in the same page. An observer in the page records, in every
frame, what the canvas shows (see ``bench.js`` and README.md). Per exposure
and method this prints the share of trials shown for exactly the intended
number of frames, and the mean and SD of the exposure error in ms (observed
duration minus intended frames x measured interval).

Run from the repository root (about 7 minutes with the defaults)::

    python benchmarks/timing/bench_timing.py
    python benchmarks/timing/bench_timing.py --trials 50 --json out.json
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PAGE = "benchmarks/timing/page.html"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
METHODS = {"raf": "rAF frames (trial.js)", "timeout": "setTimeout"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    """Serve ``root`` on a free port of 127.0.0.1 from a background thread."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_page(url: str, exposures: list[int], trials: int, seed: int) -> dict:
    """Open the benchmark page in headless Chromium and return its raw data."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(url)
            page.wait_for_function("window.benchmarkReady === true")
            options = {"exposures": exposures, "trials": trials, "seed": seed}
            return page.evaluate("(o) => window.runBenchmark(o)", options)
        finally:
            browser.close()


def observe(
    trial: dict, frames: np.ndarray, interval: float
) -> tuple[float, int, bool]:
    """Return the observed duration (ms) and frames of one trial's stimulus,
    and whether the page stalled while it was on.

    The stimulus is on from the first frame that shows its code to the first
    later frame that does not; frames are refresh intervals between the two
    frame timestamps, as a display counts them. A stall is a gap of more than
    1.5 intervals between observed frames: the page produced no frame then.
    """
    # Frames from the trial's start on; the stimulus's end may come late when
    # the page stalled, so the search is not cut off at the trial's end.
    begin = int(np.searchsorted(frames[:, 0], trial["start"] - interval))
    stamps, codes = frames[begin:, 0], frames[begin:, 1]
    before_end = codes[: np.searchsorted(stamps, trial["end"])]
    shown = np.flatnonzero(before_end == trial["code"])
    if shown.size == 0:
        return 0.0, 0, False
    first = shown[0]
    after = np.flatnonzero(codes[first:] != trial["code"])
    if after.size == 0:
        raise RuntimeError(f"trial {trial} has no frame after its stimulus")
    last = first + after[0]
    duration = float(stamps[last] - stamps[first])
    stalled = bool(np.any(np.diff(stamps[first : last + 1]) > 1.5 * interval))
    return duration, round(duration / interval), stalled


def summarise(data: dict) -> list[dict]:
    """Per exposure and method: trials, exact share, error mean and SD (ms)."""
    interval = data["refresh"]["frame_interval_ms"]
    frames = np.asarray(data["frames"], dtype=float)
    rows = []
    trials = [t for t in data["trials"] if not t.get("warmup")]
    for exposure in sorted({t["frames"] for t in trials}):
        for method in METHODS:
            chosen = [
                t for t in trials if (t["frames"], t["method"]) == (exposure, method)
            ]
            observed = [observe(t, frames, interval) for t in chosen]
            errors = np.array([d - exposure * interval for d, _, _ in observed])
            exact = np.array([n == exposure for _, n, _ in observed])
            stalled = np.array([s for _, _, s in observed])
            row = {
                "exposure_frames": exposure,
                "method": method,
                "n": len(chosen),
                "exact_share": float(exact.mean()),
                "error_mean_ms": float(errors.mean()),
                "error_sd_ms": float(errors.std(ddof=1)),
                "error_max_abs_ms": float(np.abs(errors).max()),
                "stalled": int(stalled.sum()),
                "inexact_stalled": int((~exact & stalled).sum()),
                "exact_share_unstalled": float(exact[~stalled].mean()),
            }
            if method == "raf":
                # The presenter's own count, against the observer's.
                reported = np.array([t["achieved"] for t in chosen])
                row["self_report_agrees"] = float(
                    (reported == np.array([n for _, n, _ in observed])).mean()
                )
            rows.append(row)
    return rows


def report(data: dict, rows: list[dict]) -> str:
    """The printed table: one row per exposure and method, then ratios."""
    refresh = data["refresh"]
    lines = [
        f"browser: {data['userAgent']}",
        f"refresh: {refresh['frame_interval_ms']:.3f} ms "
        f"({refresh['refresh_hz']:.2f} Hz, SD {refresh['frame_interval_sd_ms']:.3f} ms"
        f" over {refresh['n_frames']} frames)",
        f"observer frames logged: {len(data['frames'])}",
        "",
        f"{'exposure':>8}  {'method':<22}{'n':>5}  {'exact':>7}  "
        f"{'mean err ms':>11}  {'SD err ms':>9}  {'max|err| ms':>11}  "
        f"{'stalled':>7}  {'inexact in stall':>16}  {'exact w/o stall':>15}",
    ]
    for row in rows:
        lines.append(
            f"{row['exposure_frames']:>6} f  {METHODS[row['method']]:<22}"
            f"{row['n']:>5}  {100 * row['exact_share']:>6.1f}%  "
            f"{row['error_mean_ms']:>11.2f}  {row['error_sd_ms']:>9.2f}  "
            f"{row['error_max_abs_ms']:>11.2f}  {row['stalled']:>7}  "
            f"{row['inexact_stalled']:>16}  "
            f"{100 * row['exact_share_unstalled']:>14.1f}%"
        )
    lines.append("")
    lines.append("ratios, setTimeout / rAF (same run):")
    by_key = {(r["exposure_frames"], r["method"]): r for r in rows}
    for exposure in sorted({r["exposure_frames"] for r in rows}):
        raf, timeout = by_key[(exposure, "raf")], by_key[(exposure, "timeout")]
        inexact = [round((1 - r["exact_share"]) * r["n"]) for r in (raf, timeout)]
        ratio = (
            f"{inexact[1] / inexact[0]:.1f}x"
            if inexact[0] > 0
            else f"{inexact[1]} against none"
        )
        sd = (
            f"{timeout['error_sd_ms'] / raf['error_sd_ms']:.1f}x"
            if raf["error_sd_ms"] > 0
            else "inf"
        )
        lines.append(
            f"  {exposure:>2} frames: trials not exact {ratio}, error SD {sd}; "
            f"rAF self-report agrees with the observer on "
            f"{100 * raf['self_report_agrees']:.1f}% of trials"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=200, help="trials per exposure and method"
    )
    parser.add_argument(
        "--exposures", default="1,3,6,30", help="comma-separated frame counts"
    )
    parser.add_argument("--seed", type=int, default=1, help="trial order seed")
    parser.add_argument("--json", type=Path, help="also write the raw page data here")
    args = parser.parse_args()
    try:
        exposures = [int(x) for x in args.exposures.split(",")]
    except ValueError:
        parser.error(f"--exposures: got {args.exposures!r}; allowed: e.g. 1,3,6,30")
    if args.trials < 2 or any(x < 1 for x in exposures):
        parser.error("--trials must be at least 2 and every exposure at least 1 frame")

    server = serve(ROOT)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{PAGE}"
        data = run_page(url, exposures, args.trials, args.seed)
    finally:
        server.shutdown()
    if args.json:
        args.json.write_text(json.dumps(data), encoding="utf-8")
    rows = summarise(data)
    print(report(data, rows))


if __name__ == "__main__":
    main()
