// One trial on the stage: fixation, stimulus for N frames, optional mask,
// response screen with two buttons and the participant's keys.

import { button, el } from "./dom.js";
import { LABELS } from "./keys.js";
import { elapsedFrames, nextFrame, round, runPhases } from "./timing.js";

// The stage's background, equal to the page's so the canvas has no visible edge.
const BACKGROUND = "#808080";
const FIXATION_COLOUR = "#111";
const FIXATION_ARM_PX = 12;
const FIXATION_WIDTH_PX = 3;

// Mask noise is drawn in square cells of this many CSS pixels.
const MASK_CELL_PX = 8;

// The API takes frame counts up to this; unlimited viewing longer than that
// (about 2.8 minutes at 60 Hz) is reported as this many frames.
const MAX_FRAMES = 10_000;

/** Flags whether the page lost visibility or focus while it is watching. */
class AttentionWatch {
  constructor() {
    this.visibilityLost = false;
    this.focusLost = false;
    this.onVisibility = () => {
      if (document.visibilityState === "hidden") this.visibilityLost = true;
    };
    this.onBlur = () => {
      this.focusLost = true;
    };
  }

  start() {
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("blur", this.onBlur);
  }

  stop() {
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("blur", this.onBlur);
  }
}

/** A square canvas of random grey cells, `size` CSS pixels wide. */
export function makeNoise(size, dpr = 1) {
  const cells = Math.max(1, Math.ceil(size / MASK_CELL_PX));
  const small = document.createElement("canvas");
  small.width = cells;
  small.height = cells;
  const context = small.getContext("2d");
  const image = context.createImageData(cells, cells);
  for (let i = 0; i < image.data.length; i += 4) {
    const grey = Math.floor(Math.random() * 256);
    image.data[i] = grey;
    image.data[i + 1] = grey;
    image.data[i + 2] = grey;
    image.data[i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  const noise = document.createElement("canvas");
  noise.width = Math.round(size * dpr);
  noise.height = Math.round(size * dpr);
  const big = noise.getContext("2d");
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, cells * MASK_CELL_PX * dpr, cells * MASK_CELL_PX * dpr);
  return noise;
}

/**
 * The trial stage: a canvas and the response buttons.
 *
 * `keys` is the participant's KeyMapping; the buttons follow its keyboard
 * order. `data-phase` and `data-position` on the stage element say what is on
 * screen (for tests and the researcher's own checks; they reveal nothing
 * about the image).
 */
export class Stage {
  constructor(keys) {
    this.keys = keys;
    this.dpr = window.devicePixelRatio || 1;
    this.canvas = el("canvas", { class: "stage-canvas", attrs: { "aria-hidden": "true" } });
    this.context = this.canvas.getContext("2d", { alpha: false });
    this.buttons = {};
    const row = el("div", {
      class: "responses",
      attrs: { role: "group", "aria-label": "Your answer" },
    });
    for (const response of keys.ordered()) {
      const key = keys.keyFor(response).toUpperCase();
      this.buttons[response] = button("", {
        class: `response response-${response}`,
        disabled: true,
      });
      this.buttons[response].append(
        el("span", { class: "response-label", text: LABELS[response] }),
        el("kbd", { text: key }),
      );
      this.buttons[response].dataset.response = response;
      row.append(this.buttons[response]);
    }
    this.feedback = el("p", { class: "feedback", attrs: { "aria-live": "assertive" } });
    this.element = el("section", { class: "stage", attrs: { "aria-label": "Trial" } }, [
      this.canvas,
      row,
      this.feedback,
    ]);
    this.setPhase("idle");
    this.setSize(256);
  }

  /** Size the canvas to `size` CSS pixels, backed by device pixels. */
  setSize(size) {
    this.size = size;
    this.canvas.style.width = `${size}px`;
    this.canvas.style.height = `${size}px`;
    this.canvas.width = Math.round(size * this.dpr);
    this.canvas.height = Math.round(size * this.dpr);
    this.clear();
  }

  setPhase(phase, position = null) {
    this.element.dataset.phase = phase;
    if (position !== null) this.element.dataset.position = String(position);
  }

  clear() {
    this.context.fillStyle = BACKGROUND;
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  drawFixation() {
    this.clear();
    const c = this.context;
    const mid = this.canvas.width / 2;
    const arm = FIXATION_ARM_PX * this.dpr;
    const half = (FIXATION_WIDTH_PX * this.dpr) / 2;
    c.fillStyle = FIXATION_COLOUR;
    c.fillRect(mid - arm, mid - half, 2 * arm, 2 * half);
    c.fillRect(mid - half, mid - arm, 2 * half, 2 * arm);
  }

  drawImage(bitmap) {
    this.clear();
    // Images are normalised to the display size on the server; an image of
    // another size is scaled to fit, keeping its aspect ratio.
    const scale = Math.min(this.canvas.width / bitmap.width, this.canvas.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    this.context.imageSmoothingEnabled = true;
    this.context.imageSmoothingQuality = "high";
    this.context.drawImage(bitmap, (this.canvas.width - w) / 2, (this.canvas.height - h) / 2, w, h);
  }

  drawMask(noise) {
    this.context.drawImage(noise, 0, 0, this.canvas.width, this.canvas.height);
  }

  setResponsesEnabled(enabled) {
    for (const b of Object.values(this.buttons)) {
      b.disabled = !enabled;
    }
    this.element.classList.toggle("answering", enabled);
  }

  /**
   * Present one trial and collect the response.
   *
   * `plan`: `{position, kind, bitmap, fixationFrames, exposureFrames,
   * maskFrames, intervalMs}`; `exposureFrames: 0` shows the image until the
   * response. Resolves to the body of PUT /trials/<position>.
   */
  async run(plan) {
    const watch = new AttentionWatch();
    watch.start();
    try {
      return await this.present(plan, watch);
    } finally {
      watch.stop();
      this.setResponsesEnabled(false);
    }
  }

  async present(plan, watch) {
    const { position, bitmap, intervalMs } = plan;
    const unlimited = plan.exposureFrames === 0;
    const noise = plan.maskFrames > 0 && !unlimited ? makeNoise(this.size, this.dpr) : null;
    const respond = () => {
      this.setResponsesEnabled(true);
      this.setPhase("response");
    };
    const phases = [];
    if (plan.fixationFrames > 0) {
      phases.push({
        name: "fixation",
        frames: plan.fixationFrames,
        draw: () => {
          this.drawFixation();
          this.setPhase("fixation", position);
        },
      });
    }
    phases.push({
      name: "stimulus",
      frames: unlimited ? 0 : plan.exposureFrames,
      draw: () => {
        this.drawImage(bitmap);
        this.setPhase("stimulus", position);
        if (unlimited) respond();
      },
    });
    if (!unlimited) {
      if (noise) {
        phases.push({
          name: "mask",
          frames: plan.maskFrames,
          draw: () => {
            this.drawMask(noise);
            this.setPhase("mask");
          },
        });
      }
      phases.push({
        name: "response",
        frames: 0,
        draw: () => {
          this.clear();
          respond();
        },
      });
    }

    const shown = await runPhases(phases, intervalMs);
    const stimulus = shown.phases.find((p) => p.name === "stimulus");
    const responseOnset = shown.phases[shown.phases.length - 1].onset;
    const answer = await this.collect(responseOnset);
    if (unlimited) {
      stimulus.offset = await nextFrame(() => this.clear());
      stimulus.achieved = elapsedFrames(stimulus.onset, stimulus.offset, intervalMs);
    }
    this.setPhase("answered");

    return {
      response: answer.response,
      rt_ms: round(answer.at - responseOnset, 3),
      exposure_ms: round(stimulus.offset - stimulus.onset, 3),
      intended_frames: unlimited ? 0 : plan.exposureFrames,
      achieved_frames: Math.min(stimulus.achieved, MAX_FRAMES),
      frame_interval_ms: round(intervalMs, 3),
      onset_ms: round(stimulus.onset, 3),
      offset_ms: round(stimulus.offset, 3),
      visibility_lost: watch.visibilityLost,
      focus_lost: watch.focusLost,
      key: answer.key,
      client_sent_at: new Date().toISOString(),
    };
  }

  /**
   * Wait for a key or button press made after `onset`. Resolves to
   * `{response, key, at}`, `at` being the event's time on the
   * performance.now() clock.
   */
  collect(onset) {
    return new Promise((resolve) => {
      const finish = (response, key, at) => {
        window.removeEventListener("keydown", onKey, true);
        for (const b of Object.values(this.buttons)) b.removeEventListener("click", onClick);
        this.setResponsesEnabled(false);
        resolve({ response, key, at });
      };
      const onKey = (event) => {
        const response = this.keys.responseFor(event);
        // A key pressed before the response screen appeared is not an answer.
        if (response === null || event.timeStamp < onset) return;
        event.preventDefault();
        finish(response, event.key.toLowerCase(), event.timeStamp);
      };
      const onClick = (event) => {
        if (event.timeStamp < onset) return;
        // A keyboard activation of a focused button arrives as a click too.
        finish(event.currentTarget.dataset.response, "button", event.timeStamp);
      };
      window.addEventListener("keydown", onKey, true);
      for (const b of Object.values(this.buttons)) b.addEventListener("click", onClick);
    });
  }

  /** Show practice feedback under the canvas. `correct: null` = unknown. */
  showFeedback(correct) {
    const [text, kind] =
      correct === null
        ? ["No feedback this time (the connection is slow).", "unknown"]
        : correct
          ? ["Correct.", "correct"]
          : ["Not correct.", "wrong"];
    this.feedback.textContent = text;
    this.feedback.className = `feedback ${kind}`;
  }

  hideFeedback() {
    this.feedback.textContent = "";
    this.feedback.className = "feedback";
  }
}
