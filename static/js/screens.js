// The screens around the trials: consent, instructions, device check, block
// start and breaks, saving, debrief, completion and messages. Each function
// mounts its screen into the app container and resolves when the
// participant moves on. Everything works with the keyboard alone: focus goes
// to the screen's heading or main button, and buttons answer Enter and Space.

import { button, el, mount, once, page, paragraphs } from "./dom.js";
import { LABELS } from "./keys.js";
import { round } from "./timing.js";

// MTurk's external submit endpoints; any other turkSubmitTo is not trusted.
const MTURK_HOSTS = new Set(["www.mturk.com", "workersandbox.mturk.com"]);

// How long the completion code stays on screen before the Prolific redirect.
const REDIRECT_DELAY_MS = 3000;

export function consent(app, text) {
  return new Promise((resolve) => {
    const box = el("input", { type: "checkbox", id: "consent-agree" });
    const agree = button("Continue", { class: "primary", disabled: true, id: "consent-continue" });
    const decline = button("I do not agree", { id: "consent-decline" });
    box.addEventListener("change", () => {
      agree.disabled = !box.checked;
    });
    agree.addEventListener("click", () => resolve(true));
    decline.addEventListener("click", () => resolve(false));
    mount(
      app,
      page(
        "Information and consent",
        [
          ...paragraphs(text),
          el("p", { class: "agree" }, [
            box,
            el("label", {
              attrs: { for: "consent-agree" },
              text: " I have read the information above and agree to take part.",
            }),
          ]),
        ],
        [agree, decline],
      ),
    );
  });
}

/** The key mapping as "F = Real, J = Generated", in keyboard order. */
function mappingList(keys) {
  return el(
    "ul",
    { class: "mapping" },
    keys.ordered().map((response) =>
      el("li", {}, [
        el("kbd", { text: keys.keyFor(response).toUpperCase() }),
        ` ${LABELS[response]}`,
      ]),
    ),
  );
}

export async function instructions(app, text, keys, { resumed = false } = {}) {
  const go = button(resumed ? "Continue where I left off" : "Continue", {
    class: "primary",
    id: "instructions-continue",
    attrs: { "data-autofocus": "" },
  });
  const intro = resumed
    ? [
        el("p", {
          text: "Welcome back. Your earlier answers are saved; you continue where you left off.",
        }),
      ]
    : [];
  mount(
    app,
    page(
      resumed ? "Welcome back" : "Instructions",
      [
        ...intro,
        ...paragraphs(text),
        el("p", { text: "Your keys (or click the buttons under the image):" }),
        mappingList(keys),
      ],
      [go],
    ),
  );
  await once(go, "click");
}

/** Explain the measured refresh interval and the exposure it gives. */
export async function deviceResult(app, refresh, exposure) {
  const go = button("Continue", {
    class: "primary",
    id: "device-continue",
    attrs: { "data-autofocus": "" },
  });
  const hz = round(refresh.refresh_hz, 1);
  const interval = round(refresh.frame_interval_ms, 2);
  const shown =
    exposure.exposure_frames === 0
      ? "Each image stays on screen until you answer."
      : `Each image will be shown for ${exposure.exposure_frames} frame(s) ` +
        `(about ${round(exposure.exposure_ms, 1)} ms).`;
  mount(
    app,
    page(
      "Screen check",
      [
        el("p", {
          id: "device-result",
          text:
            `Your screen shows a new picture every ${interval} ms (${hz} Hz), ` +
            `measured over ${refresh.n_frames} frames.`,
        }),
        el("p", { text: shown }),
      ],
      [go],
    ),
  );
  await once(go, "click");
}

export function measuring(app) {
  mount(
    app,
    page("Screen check", [
      el("p", {
        text: "Measuring your screen. Please keep this window in front; this takes two seconds.",
      }),
    ]),
  );
}

/**
 * The screen before a block: `load(onprogress)` preloads the block's images
 * while a progress bar fills; the Start button is enabled when they are
 * decoded. A failed load offers "Try again" (and tries again by itself when
 * the browser comes back online). Resolves to load's result.
 */
export async function blockStart(app, { title, lines, load }) {
  const bar = el("progress", {
    max: 1,
    value: 0,
    id: "preload-progress",
    attrs: { "aria-label": "Images loaded" },
  });
  const status = el("p", { class: "status", text: "Loading images..." });
  const start = button("Start", { class: "primary", disabled: true, id: "block-start" });
  mount(app, page(title, [...lines.map((line) => el("p", { text: line })), bar, status], [start]));
  const progress = (done, total) => {
    bar.max = Math.max(total, 1);
    bar.value = done;
    status.textContent = `Loading images: ${done} of ${total}.`;
  };
  for (;;) {
    try {
      const result = await load(progress);
      status.textContent = "Ready. Press Start (or Enter) when you are.";
      start.disabled = false;
      start.focus();
      await once(start, "click");
      return result;
    } catch (error) {
      status.textContent =
        "Some images could not be loaded. Please check your internet connection " +
        "and try again.";
      status.classList.add("error");
      const retry = button("Try again", { class: "primary", id: "preload-retry" });
      start.replaceWith(retry);
      retry.focus();
      // Try again on the participant's word, or by itself once the browser
      // says it is back online.
      await Promise.race([once(retry, "click"), once(window, "online")]);
      retry.replaceWith(start);
      status.classList.remove("error");
      console.warn("preload failed:", error);
    }
  }
}

/**
 * A "saving" screen shown while `queue` drains; it stays up while the
 * browser is offline and says so. Resolves when everything is stored, or
 * when the server refused to take more (the runner then reads the state).
 */
export async function saving(app, queue, title = "Saving your answers") {
  if (!queue.pending) return;
  const status = el("p", { class: "status", id: "saving-status" });
  const update = () => {
    const offline = queue.failing || navigator.onLine === false;
    status.textContent = offline
      ? `The connection is lost. Your ${queue.pending} unsent answer(s) are kept ` +
        "in this browser and will be sent as soon as it is back. Please keep this page open."
      : `Saving... ${queue.pending} answer(s) left to send.`;
  };
  update();
  mount(app, page(title, [status]));
  app.querySelector(".page").setAttribute("aria-busy", "true");
  const timer = setInterval(update, 500);
  try {
    await queue.drain();
  } finally {
    clearInterval(timer);
  }
}

export async function debrief(app, text) {
  const comments = el("textarea", { id: "debrief-comments", rows: 4, maxLength: 5000 });
  const finish = button("Finish", {
    class: "primary",
    id: "debrief-finish",
    attrs: { "data-autofocus": "" },
  });
  mount(
    app,
    page(
      "Thank you",
      [
        ...paragraphs(text),
        el("p", {}, [
          el("label", { attrs: { for: "debrief-comments" }, text: "Comments (optional):" }),
        ]),
        comments,
      ],
      [finish],
    ),
  );
  await once(finish, "click");
  return comments.value.trim();
}

/**
 * The form that posts the assignment back to MTurk. The server describes it
 * in `completion.mturk` ({action, assignmentId}); only MTurk's own hosts are
 * accepted as its target.
 */
function mturkForm(completion) {
  const mturk = completion.mturk;
  if (!mturk || !mturk.action) return null;
  try {
    const target = new URL(mturk.action);
    if (target.protocol !== "https:" || !MTURK_HOSTS.has(target.host)) return null;
  } catch {
    return null;
  }
  const hidden = (name, value) => el("input", { type: "hidden", name, value: value || "" });
  return el("form", { method: "POST", action: mturk.action, id: "mturk-submit" }, [
    hidden("assignmentId", mturk.assignmentId),
    hidden("completion_code", completion.code),
    hidden("status", completion.status),
    el("button", {
      type: "submit",
      class: "primary",
      text: "Submit the HIT",
      attrs: { "data-autofocus": "" },
    }),
  ]);
}

/**
 * The end: the completion or screen-out code, the Prolific redirect, or the
 * MTurk submit form. `completion` is the server's object
 * `{status, code, url, mturk}`.
 */
export function finished(app, completion, { platform }) {
  const screenedOut = completion.status === "screened_out";
  const body = screenedOut
    ? [
        el("p", {
          text:
            "Thank you for your time. The study ends here for you: your answers to " +
            "the attention checks did not meet the study's requirements.",
        }),
      ]
    : [el("p", { text: "You have finished the study. All your answers are saved." })];
  if (completion.code) {
    const code = el("strong", {
      class: "completion-code",
      id: "completion-code",
      text: completion.code,
    });
    body.push(el("p", {}, ["Your code: ", code]));
  }
  const form = platform === "mturk" ? mturkForm(completion) : null;
  if (form) body.push(form);
  if (completion.url) {
    body.push(
      el("p", {}, [
        "You will be taken back automatically. If nothing happens, ",
        el("a", { href: completion.url, id: "completion-link", text: "follow this link" }),
        ".",
      ]),
    );
    setTimeout(() => window.location.assign(completion.url), REDIRECT_DELAY_MS);
  } else if (platform !== "mturk") {
    body.push(el("p", { text: "You can close this page now." }));
  }
  mount(app, page(screenedOut ? "Thank you" : "Study complete", body));
}

/** A screen with a message and optionally a button; resolves on the button. */
export async function message(app, title, text, action = null) {
  const go = action ? button(action, { class: "primary", attrs: { "data-autofocus": "" } }) : null;
  mount(app, page(title, paragraphs(text), go ? [go] : []));
  if (go) await once(go, "click");
}

/**
 * A covering message shown whenever the window is smaller than the study
 * needs; `ready()` resolves once it is large enough. `onsmall()` is called
 * each time the window becomes too small.
 */
export class WindowGuard {
  constructor(minWidth, minHeight, onsmall = () => {}) {
    this.minWidth = minWidth || 0;
    this.minHeight = minHeight || 0;
    this.onsmall = onsmall;
    this.waiters = [];
    const props = {
      class: "overlay",
      id: "window-too-small",
      hidden: true,
      attrs: { role: "alertdialog", "aria-live": "assertive" },
    };
    this.overlay = el("div", props, [
      page("Please enlarge this window", [
        el("p", {
          text:
            `This study needs a browser window of at least ${this.minWidth} x ${this.minHeight} ` +
            "pixels. Please maximise the window or zoom out (Ctrl and -). The study continues " +
            "by itself when the window is large enough.",
        }),
        el("p", { class: "status" }),
      ]),
    ]);
    document.body.append(this.overlay);
    window.addEventListener("resize", () => this.check());
    this.check();
  }

  get fits() {
    return window.innerWidth >= this.minWidth && window.innerHeight >= this.minHeight;
  }

  check() {
    const wasHidden = this.overlay.hidden;
    this.overlay.hidden = this.fits;
    this.overlay.querySelector(".status").textContent =
      `Your window is now ${window.innerWidth} x ${window.innerHeight} pixels.`;
    if (!this.fits && wasHidden) {
      this.onsmall({ width: window.innerWidth, height: window.innerHeight });
    }
    if (this.fits) for (const resolve of this.waiters.splice(0)) resolve();
  }

  ready() {
    return this.fits ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
