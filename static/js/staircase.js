// Exposure of the next trial, fixed or adaptive.
//
// With a fixed exposure every trial carries its frames from the server. With
// the adaptive staircase (1-up/N-down on frames, run by the server's
// `staircase_step`) the next exposure depends on whether the last main answer
// was correct, and the browser cannot know that: labels never reach it, and
// attention checks are served as main trials, so it cannot even tell which
// answers count. The rule therefore cannot be run here. Instead the runner
// takes `next_exposure_frames` from the server's answer to each response and
// waits for that answer (up to ADAPTIVE_WAIT_MS) before the next main trial.
// If the answer is late (offline), the trial keeps the last exposure the
// server gave; every trial reports the frames it really used
// (`intended_frames`), so the data stays true either way.

// How long the runner waits for the server's answer on an adaptive trial.
export const ADAPTIVE_WAIT_MS = 4000;

export class ExposureSchedule {
  /** `session` is the session state; its `staircase` is null when fixed. */
  constructor(session) {
    this.adaptive = Boolean(session.staircase);
    this.current = this.adaptive ? session.staircase.frames : null;
    this.updatedBy = null;
  }

  /** Frames to show `trial` for: the server's latest word wins. */
  framesFor(trial) {
    if (this.adaptive && trial.kind !== "practice" && Number.isInteger(this.current)) {
      return this.current;
    }
    return trial.exposure_frames;
  }

  /** Take the next exposure from the server's answer to a response. */
  update(answer, position) {
    const next = answer && answer.next_exposure_frames;
    if (Number.isInteger(next) && next >= 1) {
      this.current = next;
      this.updatedBy = position;
    }
  }

  /** Whether the runner must wait for the answer to this trial. */
  waitsFor(trial) {
    return this.adaptive && trial.kind !== "practice";
  }
}
