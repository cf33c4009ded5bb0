// Fetch and decode every image of a block before the block starts.
//
// A decoded ImageBitmap draws onto the canvas without any decoding work in
// the frame that shows it, so the first frame of an exposure is not late.

import { backoffDelay } from "./api.js";

// Images fetched at once; browsers allow about six connections per host.
const CONCURRENCY = 4;

// Tries per image before the block is given up as failed.
const ATTEMPTS = 4;

export class PreloadError extends Error {
  constructor(failed) {
    super(`${failed.length} image(s) could not be loaded`);
    this.name = "PreloadError";
    this.failed = failed;
  }
}

async function fetchBitmap(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    const error = new Error(`HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  const blob = await response.blob();
  return createImageBitmap(blob);
}

async function loadWithRetry(url) {
  let lastError = null;
  for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
    try {
      return await fetchBitmap(url);
    } catch (error) {
      lastError = error;
      // An expired or foreign signature will not start working.
      if (error.status === 404 || error.status === 403) break;
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
    }
  }
  throw lastError;
}

/**
 * Load every trial's image; resolves to a Map from position to ImageBitmap.
 *
 * `onprogress(done, total)` is called after each image. Rejects with a
 * PreloadError listing the positions that failed after retries; the bitmaps
 * already decoded are closed then, so nothing is half-loaded.
 */
export async function preloadBlock(trials, onprogress = () => {}) {
  const bitmaps = new Map();
  const failed = [];
  const queue = [...trials];
  let done = 0;
  onprogress(0, trials.length);

  async function worker() {
    while (queue.length) {
      const trial = queue.shift();
      try {
        bitmaps.set(trial.position, await loadWithRetry(trial.image_url));
      } catch (error) {
        failed.push({ position: trial.position, message: String(error.message || error) });
      }
      done += 1;
      onprogress(done, trials.length);
    }
  }

  const workers = Array.from({ length: Math.min(CONCURRENCY, trials.length) }, worker);
  await Promise.all(workers);
  if (failed.length) {
    releaseBitmaps(bitmaps);
    throw new PreloadError(failed);
  }
  return bitmaps;
}

export function releaseBitmaps(bitmaps) {
  for (const bitmap of bitmaps.values()) bitmap.close();
  bitmaps.clear();
}
