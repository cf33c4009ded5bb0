// The trial runner: the participant's path from consent to completion code.
//
// The page carries a bootstrap object (docs/participant-api.md). Without a
// session the participant sees the consent form and starting creates one;
// with a session (a reload or a return) the runner resumes from the
// server's state at the first unanswered trial and reports a "reload"
// event. Responses go to a persistent queue and are sent in the background;
// the runner waits for the network only at the end of a block and at
// completion, and for practice feedback.

import { Api, ApiError, isRetryable, NetworkError, SendQueue, withRetry } from "./api.js";
import { mount } from "./dom.js";
import { KeyMapping } from "./keys.js";
import { preloadBlock, releaseBitmaps } from "./preload.js";
import * as screens from "./screens.js";
import { ADAPTIVE_WAIT_MS, ExposureSchedule } from "./staircase.js";
import { framesFor, measureRefresh } from "./timing.js";
import { Stage } from "./trial.js";

// Frames measured in the device check; the server needs at least 60.
const REFRESH_FRAMES = 120;
const MIN_REFRESH_FRAMES = 60;
const REFRESH_TRIES = 3;

// Practice feedback stays this long; the runner waits at most
// FEEDBACK_WAIT_MS for the server to grade the answer.
const FEEDBACK_MS = 900;
const FEEDBACK_WAIT_MS = 4000;

// Resize events are reported once the window has been still this long.
const RESIZE_REPORT_MS = 1000;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The session has ended for this page (screened out, expired, refused). */
class SessionOver extends Error {}

export class Runner {
  constructor(boot, app) {
    this.boot = boot;
    this.app = app;
    this.api = new Api(boot.api);
    this.token = null;
    this.queue = null;
    this.screenedOut = false;
    this.halted = null;
    this.comments = null;
  }

  async main() {
    const display = this.boot.display || {};
    this.guard = new screens.WindowGuard(
      display.min_window_width,
      display.min_window_height,
      (size) => this.event("window_too_small", size),
    );
    let state = this.boot.session;
    const resumed = Boolean(state && state.token);
    if (!resumed) {
      await this.guard.ready();
      state = await this.consentAndStart();
      if (!state) return;
    }
    this.begin(state.token);
    if (resumed) {
      this.event("reload", { next_position: state.next_position, n_answered: state.n_answered });
      await screens.saving(this.app, this.queue);
      state = await this.refreshState();
    }
    if (state.status !== "active") {
      this.finish(state);
      return;
    }

    this.keys = new KeyMapping(state.key_mapping);
    // Back after every trial was answered (a reload on the debrief): straight
    // to the debrief, no instructions or screen check needed.
    if (state.next_position < state.n_trials) {
      await screens.instructions(this.app, this.boot.texts.instructions, this.keys, {
        resumed: resumed && state.n_answered > 0,
      });
      await this.deviceCheck();
      state = await this.refreshState();
    }
    this.exposure = new ExposureSchedule(state);
    await this.runToEnd(state);
  }

  /** Consent, then POST /sessions. Resolves to the state, or null if declined. */
  async consentAndStart() {
    const agreed = await screens.consent(this.app, this.boot.texts.consent);
    if (!agreed) {
      await screens.message(
        this.app,
        "No consent given",
        "You chose not to take part, and nothing about you was stored. " +
          "You can close this page now.",
      );
      return null;
    }
    const body = {
      platform: this.boot.platform,
      params: this.boot.platform_params || {},
      consent: true,
      window: { width: window.innerWidth, height: window.innerHeight },
      screen: { width: window.screen.width, height: window.screen.height },
      device_pixel_ratio: window.devicePixelRatio || 1,
    };
    screens.message(this.app, "Starting", "Preparing your session...");
    // 503 at the start means the study is full or paused, not a hiccup.
    const retryable = (error) => isRetryable(error) && error.status !== 503;
    try {
      return await withRetry(() => this.api.startSession(this.boot.study, body), {
        retryable,
      });
    } catch (error) {
      await this.explainStartError(error);
      return null;
    }
  }

  async explainStartError(error) {
    const thanks = "Thank you for your interest.";
    const texts = {
      503: ["The study is not available", `The study is full or paused at the moment. ${thanks}`],
      410: ["The study is closed", `This study no longer takes participants. ${thanks}`],
      403: [
        "You cannot take part again",
        "Our records show that you have already taken part in this study.",
      ],
    };
    if (error.status === 422 && error.field === "window") {
      texts[422] = [
        "Please enlarge this window",
        `${error.message} Enlarge the window, then reload this page.`,
      ];
    }
    const [title, text] = texts[error.status] || [
      "The study could not start",
      `Something went wrong while starting the study (${error.message}). ` +
        "Please reload the page to try again.",
    ];
    await screens.message(this.app, title, text);
  }

  /** Set up the send queue and the event reports for a session. */
  begin(token) {
    this.token = token;
    this.queue = new SendQueue(this.api, token, {
      onchange: (status) => this.showNetwork(status),
      onhalt: (error) => {
        this.halted = error;
      },
    });
    window.addEventListener("pagehide", () => this.queue.beacon());
    document.addEventListener("visibilitychange", () => {
      const hidden = document.visibilityState === "hidden";
      this.event(hidden ? "visibility_hidden" : "visibility_visible");
    });
    window.addEventListener("blur", () => this.event("blur"));
    window.addEventListener("focus", () => this.event("focus"));
    window.addEventListener("offline", () => this.event("offline"));
    window.addEventListener("online", () => this.event("online"));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(
        () => this.event("resize", { width: window.innerWidth, height: window.innerHeight }),
        RESIZE_REPORT_MS,
      );
    });
  }

  event(kind, data = {}) {
    if (this.queue) this.queue.addEvent(kind, data);
  }

  /** A small corner note while answers cannot be sent. */
  showNetwork({ failing }) {
    let note = document.getElementById("network-note");
    if (!note) {
      note = document.createElement("p");
      note.id = "network-note";
      note.className = "network-note";
      note.setAttribute("role", "status");
      document.body.append(note);
    }
    note.hidden = !failing;
    note.textContent = failing
      ? "Connection lost: your answers are kept in this browser and sent when it is back."
      : "";
  }

  async refreshState() {
    try {
      return await withRetry(() => this.api.state(this.token));
    } catch (error) {
      if (error instanceof ApiError) throw new SessionOver(error.message);
      throw error;
    }
  }

  async deviceCheck() {
    screens.measuring(this.app);
    let refresh = null;
    for (let i = 0; i < REFRESH_TRIES; i += 1) {
      refresh = await measureRefresh(REFRESH_FRAMES);
      if (refresh.n_frames >= MIN_REFRESH_FRAMES) break;
    }
    const body = {
      frame_interval_ms: refresh.frame_interval_ms,
      n_frames: refresh.n_frames,
      refresh_hz: refresh.refresh_hz,
      frame_interval_sd_ms: refresh.frame_interval_sd_ms,
    };
    const exposure = await withRetry(() => this.api.device(this.token, body));
    this.intervalMs = refresh.frame_interval_ms;
    await screens.deviceResult(this.app, refresh, exposure);
  }

  /** Blocks until every trial is answered, then debrief and completion. */
  async runToEnd(state) {
    for (;;) {
      state = await this.runBlocks(state);
      if (state.status !== "active" || this.screenedOut) {
        this.finish(await this.refreshState());
        return;
      }
      if (this.comments === null) {
        this.comments = await screens.debrief(this.app, this.boot.texts.debrief);
      }
      await screens.saving(this.app, this.queue);
      if (this.halted) {
        this.finish(await this.refreshState());
        return;
      }
      try {
        const answers = this.comments ? { comments: this.comments } : {};
        const completion = await withRetry(() => this.api.complete(this.token, answers));
        this.finish({ status: completion.status, completion });
        return;
      } catch (error) {
        // 409: some trial is not stored after all; go back and answer it.
        if (!(error instanceof ApiError && error.status === 409)) throw error;
        state = await this.refreshState();
      }
    }
  }

  /** Run blocks from the first unanswered trial until none is left. */
  async runBlocks(state) {
    while (state.status === "active" && state.next_position < state.n_trials) {
      const position = state.next_position;
      const block = state.blocks.find((b) => b.first <= position && position < b.first + b.size);
      if (!block) throw new Error(`no block holds position ${position}`);
      await this.runBlock(block, state);
      if (!this.halted) await screens.saving(this.app, this.queue);
      // After a halt (e.g. 403 once screened out) the state says what happened.
      state = await this.refreshState();
      if (this.halted && state.status === "active") throw new SessionOver(this.halted.message);
    }
    return state;
  }

  blockIntro(block, state) {
    const mains = state.blocks.filter((b) => b.kind !== "practice");
    const index = mains.indexOf(block);
    const total = mains.reduce((n, b) => n + b.size, 0);
    const done = Math.max(0, state.n_answered - (state.n_trials - total));
    if (block.kind === "practice") {
      return {
        title: "Practice",
        lines: [
          `First, ${block.size} practice images. ` +
            "After each answer you will see whether it was right.",
        ],
        isBreak: false,
      };
    }
    if (state.next_position > block.first) {
      // Back after a reload in the middle of a block.
      return {
        title: "Continue",
        lines: [
          `You have answered ${done} of ${total} images. The rest of part ${index + 1} ` +
            `of ${mains.length} comes next.`,
        ],
        isBreak: false,
      };
    }
    if (done === 0) {
      return {
        title: "The study",
        lines: [
          `Now the study itself: ${total} images in ${mains.length} part(s), without feedback.`,
          "Keep your fingers on the keys and go with your first impression.",
        ],
        isBreak: false,
      };
    }
    return {
      title: "Take a break",
      lines: [
        `You have answered ${done} of ${total} images. ` +
          `Part ${index + 1} of ${mains.length} comes next.`,
        "Rest as long as you like and start when you are ready.",
      ],
      isBreak: true,
    };
  }

  async runBlock(block, state) {
    const served = await withRetry(() => this.api.block(this.token, block.block));
    const unsent = new Set(this.queue.unsentPositions());
    const trials = served.trials.filter(
      (t) => t.position >= state.next_position && !unsent.has(t.position),
    );
    if (!trials.length) return;
    const intro = this.blockIntro(block, state);
    if (intro.isBreak) this.event("break_start", { block: block.block });
    const bitmaps = await screens.blockStart(this.app, {
      title: intro.title,
      lines: intro.lines,
      load: (progress) => preloadBlock(trials, progress),
    });
    if (intro.isBreak) this.event("break_end", { block: block.block });
    try {
      await this.runTrials(trials, bitmaps);
    } finally {
      releaseBitmaps(bitmaps);
    }
  }

  async runTrials(trials, bitmaps) {
    const stage = (this.stage = this.stage || new Stage(this.keys));
    const sides = [...bitmaps.values()].map((b) => Math.max(b.width, b.height));
    // Display size 0 keeps the images' own size.
    const size = this.boot.display.size || Math.max(...sides);
    stage.setSize(size);
    mount(this.app, stage.element);
    for (const trial of trials) {
      await this.guard.ready();
      if (this.screenedOut || this.halted) return;
      const record = await stage.run({
        position: trial.position,
        kind: trial.kind,
        bitmap: bitmaps.get(trial.position),
        fixationFrames: framesFor(trial.fixation_ms, this.intervalMs),
        exposureFrames: this.exposure.framesFor(trial),
        maskFrames: framesFor(trial.mask_ms, this.intervalMs),
        intervalMs: this.intervalMs,
      });
      const answer = this.queue.addResponse(trial.position, record).then((result) => {
        if (result && result.screened_out) this.screenedOut = true;
        this.exposure.update(result, trial.position);
        return result;
      });
      if (trial.kind === "practice") {
        const result = await Promise.race([answer, delay(FEEDBACK_WAIT_MS).then(() => null)]);
        stage.showFeedback(result && result.feedback ? Boolean(result.feedback.correct) : null);
        await delay(FEEDBACK_MS);
        stage.hideFeedback();
      } else if (this.exposure.waitsFor(trial)) {
        await Promise.race([answer, delay(ADAPTIVE_WAIT_MS)]);
      }
    }
  }

  finish(state) {
    if (state.completion) {
      // Whatever is still queued can never be stored now (e.g. an answer
      // given after the screen-out); keep nothing in the browser.
      if (this.queue) this.queue.discard();
      screens.finished(this.app, state.completion, { platform: this.boot.platform });
      return;
    }
    screens.message(
      this.app,
      "This session has ended",
      "This session cannot be continued (it ended or timed out). Thank you for your time.",
    );
  }
}

async function start() {
  const app = document.getElementById("app");
  let boot;
  try {
    boot = JSON.parse(document.getElementById("bootstrap").textContent);
  } catch (error) {
    screens.message(app, "The study could not start", "This page is incomplete. Please reload it.");
    throw error;
  }
  const runner = new Runner(boot, app);
  try {
    await runner.main();
  } catch (error) {
    const offline = error instanceof NetworkError;
    if (error instanceof SessionOver) {
      runner.finish({ status: "ended" });
      return;
    }
    screens.message(
      app,
      "Something went wrong",
      (offline
        ? "The connection to the study server was lost. "
        : "An unexpected error stopped the study. ") +
        "Your answers so far are saved. Please reload this page to continue.",
    );
    throw error;
  }
}

start();
