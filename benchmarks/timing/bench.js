// Timing benchmark page: the runner's own Stage (static/js/trial.js) against
// a setTimeout-timed presentation, both watched by an independent observer.
//
// The observer does not use the presenter's bookkeeping. In every frame it
// reads one pixel of the canvas after all animation frame callbacks have run
// and before the frame is painted: a ResizeObserver on an element whose width
// changes every frame is called at exactly that point of the rendering steps
// (after rAF callbacks and layout, before paint). The pixel it reads is what
// the frame shows, stamped with the frame's time. Each trial's stimulus is a
// solid colour that encodes a code, so frames are attributed to trials
// without relying on their order.

import { KeyMapping } from "../../static/js/keys.js";
import { measureRefresh, nextFrame } from "../../static/js/timing.js";
import { Stage } from "../../static/js/trial.js";

const SIZE = 256;
const CODES = 64;
// The observed device pixel, away from the fixation cross in the centre.
const PROBE_PX = 8;
// Frames of fixation before each stimulus, and of blank after it.
const FIXATION_FRAMES = 2;
const GAP_FRAMES = 2;

/** Stimulus colour for a code: blue 255 and green 0 mark a stimulus. */
function colour(code) {
  return [40 + 3 * code, 0, 255];
}

function decode(rgba) {
  if (rgba[1] !== 0 || rgba[2] !== 255) return -1;
  const code = (rgba[0] - 40) / 3;
  return Number.isInteger(code) && code >= 0 && code < CODES ? code : -1;
}

async function makeBitmaps() {
  const bitmaps = [];
  for (let code = 0; code < CODES; code += 1) {
    const canvas = new OffscreenCanvas(SIZE, SIZE);
    const context = canvas.getContext("2d");
    const [r, g, b] = colour(code);
    context.fillStyle = `rgb(${r}, ${g}, ${b})`;
    context.fillRect(0, 0, SIZE, SIZE);
    bitmaps.push(await createImageBitmap(canvas));
  }
  return bitmaps;
}

/** Logs `[frame timestamp, code shown or -1]` for every frame it sees. */
class FrameObserver {
  constructor(canvas) {
    this.context = canvas.getContext("2d");
    this.probe = document.getElementById("probe");
    this.log = [];
    this.pending = null;
    this.running = false;
    this.flip = false;
    this.resizes = new ResizeObserver(() => this.sample());
    this.resizes.observe(this.probe);
  }

  start() {
    this.running = true;
    const tick = (ts) => {
      if (!this.running) return;
      this.pending = ts;
      this.flip = !this.flip;
      this.probe.style.width = this.flip ? "2px" : "1px";
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  sample() {
    if (this.pending === null) return;
    const pixel = this.context.getImageData(PROBE_PX, PROBE_PX, 1, 1).data;
    this.log.push([this.pending, decode(pixel)]);
    this.pending = null;
  }

  stop() {
    this.running = false;
    this.resizes.disconnect();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A seeded generator (mulberry32), so the trial order is reproducible. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The runner's presentation: Stage.run, answered by a synthetic key press. */
async function rafTrial(stage, keys, bitmap, frames, intervalMs, position) {
  const running = stage.run({
    position,
    kind: "main",
    bitmap,
    fixationFrames: FIXATION_FRAMES,
    exposureFrames: frames,
    maskFrames: 0,
    intervalMs,
  });
  while (stage.element.dataset.phase !== "response") await nextFrame();
  for (let i = 0; i < GAP_FRAMES; i += 1) await nextFrame();
  window.dispatchEvent(new KeyboardEvent("keydown", { key: keys.keyFor("real") }));
  const record = await running;
  return { onset: record.onset_ms, offset: record.offset_ms, achieved: record.achieved_frames };
}

/** The usual alternative: draw, then clear after setTimeout(frames x interval). */
async function timeoutTrial(stage, bitmap, frames, intervalMs) {
  stage.drawFixation();
  await sleep(FIXATION_FRAMES * intervalMs);
  stage.drawImage(bitmap);
  const onset = performance.now();
  await sleep(frames * intervalMs);
  stage.clear();
  const offset = performance.now();
  await sleep(GAP_FRAMES * intervalMs);
  return { onset, offset, achieved: null };
}

/**
 * Run `trials` trials per exposure and method in a shuffled order.
 * Resolves to the refresh measurement, the trials and the observer's log.
 */
window.runBenchmark = async ({ exposures, trials, warmup = 20, seed = 1 }) => {
  const keys = new KeyMapping({ real: "f", generated: "j" });
  const stage = new Stage(keys);
  stage.setSize(SIZE);
  document.getElementById("app").replaceChildren(stage.element);
  const bitmaps = await makeBitmaps();
  const refresh = await measureRefresh(120);
  const intervalMs = refresh.frame_interval_ms;

  const plan = [];
  for (const method of ["raf", "timeout"]) {
    for (const frames of exposures) {
      for (let i = 0; i < trials; i += 1) plan.push({ method, frames });
    }
  }
  const next = random(seed);
  for (let i = plan.length - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [plan[i], plan[j]] = [plan[j], plan[i]];
  }
  const warm = plan.slice(0, warmup).map((t) => ({ ...t, warmup: true }));

  const observer = new FrameObserver(stage.canvas);
  observer.start();
  const results = [];
  let index = 0;
  for (const trial of [...warm, ...plan]) {
    const code = index % CODES;
    const start = performance.now();
    const shown =
      trial.method === "raf"
        ? await rafTrial(stage, keys, bitmaps[code], trial.frames, intervalMs, index)
        : await timeoutTrial(stage, bitmaps[code], trial.frames, intervalMs);
    results.push({ ...trial, code, start, end: performance.now(), ...shown });
    index += 1;
  }
  await nextFrame();
  await nextFrame();
  observer.stop();
  return { refresh, trials: results, frames: observer.log, userAgent: navigator.userAgent };
};

window.benchmarkReady = true;
