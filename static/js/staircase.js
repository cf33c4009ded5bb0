// Exposure of the next trial, fixed or adaptive.
//
// With a fixed exposure every trial carries its frames from the server. With
// the adaptive staircase the next exposure depends on whether the last answer
// was correct, and only the server knows that (labels never reach the
// browser), so the server's rule cannot be run here: the browser takes
// `next_exposure_frames` from the server's answer to each response and waits
// for that answer before the next trial. If the answer does not come in time
// (offline), the trial keeps the last exposure the server gave; every trial
// reports the frames it really used (`intended_frames`), so the data stays
// true either way.

// How long the runner waits for the server's answer on an adaptive trial.
export const ADAPTIVE_WAIT_MS = 4000;

export class ExposureSchedule {
  /**
   * `session` is the session state: `exposure_frames` (the device check's
   * rounding of the study's exposure) and `staircase` (null when fixed).
   */
  constructor(session) {
    this.adaptive = Boolean(session.staircase);
    this.current = Number.isInteger(session.exposure_frames) ? session.exposure_frames : null;
    this.updatedBy = null;
  }

  /** Frames to show `trial` for: the server's latest word wins. */
  framesFor(trial) {
    if (this.adaptive && this.current !== null && trial.kind !== "practice") {
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
