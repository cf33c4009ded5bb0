// Frame timing: refresh measurement and frame-counted presentation.
//
// Everything that changes what is on screen during a trial happens inside
// requestAnimationFrame callbacks. A callback's timestamp is the start of the
// frame it belongs to, so the time between two callbacks' timestamps is a
// whole number of refresh intervals even when a callback ran late or a frame
// was skipped. Durations are therefore counted as elapsed refresh intervals
// between timestamps, not as the number of callbacks seen: a skipped callback
// does not lengthen an exposure (the screen keeps showing the last frame), and
// a late removal is reported as the extra frame it really was.

// Frames left out at the start of a measurement: the first callbacks after a
// page change are often irregular.
const WARMUP_FRAMES = 5;

// An interval further than this fraction from the median is a skipped frame or
// a stall, not an estimate of the refresh interval.
const OUTLIER_FRACTION = 0.5;

/** The median of a non-empty array of numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Summarise frame timestamps (ms) as the body of POST /sessions/<token>/device.
 *
 * Intervals far from the median (skipped frames, stalls) are left out of the
 * mean and SD and counted in `n_outliers`; `n_frames` is the number of
 * intervals the estimate rests on.
 */
export function summariseIntervals(stamps) {
  const deltas = stamps.slice(1).map((t, i) => t - stamps[i]);
  if (deltas.length === 0) {
    throw new Error("summariseIntervals needs at least two timestamps");
  }
  const mid = median(deltas);
  const kept = deltas.filter((d) => Math.abs(d - mid) <= OUTLIER_FRACTION * mid);
  const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
  const variance =
    kept.length > 1
      ? kept.reduce((a, d) => a + (d - mean) ** 2, 0) / (kept.length - 1)
      : 0;
  return {
    frame_interval_ms: round(mean, 3),
    frame_interval_sd_ms: round(Math.sqrt(variance), 3),
    refresh_hz: round(1000 / mean, 2),
    n_frames: kept.length,
    n_outliers: deltas.length - kept.length,
  };
}

/**
 * Measure the refresh interval from `nFrames` usable frame intervals.
 *
 * Stops after `4 * nFrames` frames whatever happened, so a page that is
 * hidden or starved still finishes (with fewer usable frames).
 */
export function measureRefresh(nFrames = 120) {
  return new Promise((resolve) => {
    const stamps = [];
    let seen = 0;
    const limit = 4 * nFrames + WARMUP_FRAMES;
    function tick(ts) {
      seen += 1;
      if (seen > WARMUP_FRAMES) stamps.push(ts);
      const enough =
        stamps.length > nFrames && summariseIntervals(stamps).n_frames >= nFrames;
      if (enough || seen >= limit) {
        resolve(summariseIntervals(stamps));
      } else {
        requestAnimationFrame(tick);
      }
    }
    requestAnimationFrame(tick);
  });
}

/** Whole frames for a duration: at least one unless the duration is 0. */
export function framesFor(ms, intervalMs) {
  if (!(ms > 0)) return 0;
  return Math.max(1, Math.round(ms / intervalMs));
}

/** Refresh intervals elapsed between two frame timestamps. */
export function elapsedFrames(fromTs, toTs, intervalMs) {
  return Math.round((toTs - fromTs) / intervalMs);
}

/**
 * Run display phases back to back, each drawn inside a rAF callback.
 *
 * `phases` is a list of `{name, frames, draw}`. A phase's `draw()` runs
 * in the callback of the frame that first shows it; the phase ends at the
 * first callback at least `frames` refresh intervals after its onset, where
 * the next phase is drawn. Phases other than the last need `frames` of
 * at least 1 (leave out empty ones). `frames: null` holds a phase until
 * `controller.release()` is called. The last phase is drawn and the promise
 * resolves at its onset; it stays on screen until the caller draws something
 * else (see `nextFrame`).
 *
 * Resolves to `{phases: [{name, intended, onset, offset, achieved}]}` with
 * timestamps in ms on the performance.now() clock; the last phase has
 * `offset: null`. `controller.cancel()` stops the sequence where it is
 * and rejects.
 */
export function runPhases(phases, intervalMs, controller = new PhaseController()) {
  if (phases.length === 0) throw new Error("runPhases needs at least one phase");
  return new Promise((resolve, reject) => {
    const log = [];
    let index = 0;
    let onset = null;

    function start(ts) {
      const phase = phases[index];
      phase.draw(ts);
      onset = ts;
      log.push({ name: phase.name, intended: phase.frames, onset: ts, offset: null });
    }

    function tick(ts) {
      if (controller.cancelled) {
        reject(new PhaseCancelled());
        return;
      }
      if (onset !== null) {
        const phase = phases[index];
        const elapsed = elapsedFrames(onset, ts, intervalMs);
        const held = phase.frames === null;
        if (held ? !controller.released : elapsed < phase.frames) {
          requestAnimationFrame(tick);
          return;
        }
        const entry = log[log.length - 1];
        entry.offset = ts;
        entry.achieved = elapsed;
        index += 1;
        controller.released = false;
      }
      start(ts);
      if (index === phases.length - 1) {
        resolve({ phases: log });
        return;
      }
      requestAnimationFrame(tick);
    }

    requestAnimationFrame(tick);
  });
}

/** Lets the caller release a held phase or cancel a running sequence. */
export class PhaseController {
  constructor() {
    this.released = false;
    this.cancelled = false;
  }

  release() {
    this.released = true;
  }

  cancel() {
    this.cancelled = true;
  }
}

export class PhaseCancelled extends Error {
  constructor() {
    super("presentation cancelled");
    this.name = "PhaseCancelled";
  }
}

/** Draw in the next rAF callback; resolves to that frame's timestamp. */
export function nextFrame(draw = () => {}) {
  return new Promise((resolve) => {
    requestAnimationFrame((ts) => {
      draw(ts);
      resolve(ts);
    });
  });
}

export function round(value, digits) {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
