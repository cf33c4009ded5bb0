// The participant API (docs/participant-api.md) and the persistent send queue.
//
// Responses and events are written to localStorage before anything is sent,
// so a crash, a reload or a lost connection loses nothing: the queue sends
// them in order, retries with exponential backoff and jitter, and on pagehide
// hands whatever responses are still unsent to navigator.sendBeacon. The
// server stores a response once and acknowledges a replay of the same payload
// again, so sending one twice (beacon, then queue after a reload) is safe.

const STORAGE_PREFIX = "realism-runner:v1:";

// Backoff between retries: the delay doubles from BASE up to CAP and is
// jittered (half fixed, half random) so many browsers coming back online at
// once do not hit the server in lockstep.
const BACKOFF_BASE_MS = 400;
const BACKOFF_CAP_MS = 15_000;

// With more unsent responses than this the queue uses the batch endpoint.
const BATCH_FROM = 3;
const BATCH_MAX = 100;

// sendBeacon refuses payloads over about 64 KiB; stay well below.
const BEACON_MAX_BYTES = 48 * 1024;

// Statuses worth retrying: the server or the network is having a moment.
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

// Statuses that end the session for this page: the token is unknown (401),
// the session may not go on (403, e.g. screened out) or is over (410).
const HALTING = new Set([401, 403, 410]);

/** An answer with an error status, carrying the API's error envelope. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error.code || null;
    this.field = error.field || null;
    this.body = body;
  }
}

/** The request did not reach the server or its answer did not arrive. */
export class NetworkError extends Error {
  constructor(cause) {
    super(`network error: ${cause && cause.message ? cause.message : cause}`);
    this.name = "NetworkError";
  }
}

export function isRetryable(error) {
  if (error instanceof NetworkError) return true;
  return error instanceof ApiError && RETRYABLE.has(error.status);
}

/** Delay before retry number `attempt` (0-based), in ms. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** A thin fetch wrapper for the JSON API under `base` (e.g. "/api/v1"). */
export class Api {
  constructor(base) {
    this.base = base.replace(/\/$/, "");
  }

  async request(method, path, body = undefined, { keepalive = false } = {}) {
    const init = { method, credentials: "same-origin", cache: "no-store", keepalive };
    if (body !== undefined) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (cause) {
      throw new NetworkError(cause);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (cause) {
      // An answer without a JSON body: a proxy's error page, or the
      // connection dropped while the body was read.
      if (response.ok) throw new NetworkError(cause);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  startSession(study, body) {
    return this.request("POST", `/studies/${encodeURIComponent(study)}/sessions`, body);
  }

  state(token) {
    return this.request("GET", `/sessions/${token}`);
  }

  device(token, body) {
    return this.request("POST", `/sessions/${token}/device`, body);
  }

  block(token, n) {
    return this.request("GET", `/sessions/${token}/blocks/${n}`);
  }

  respond(token, position, body) {
    return this.request("PUT", `/sessions/${token}/trials/${position}`, body, {
      keepalive: true,
    });
  }

  respondBatch(token, responses) {
    return this.request("POST", `/sessions/${token}/responses`, { responses });
  }

  event(token, body) {
    return this.request("POST", `/sessions/${token}/events`, body, { keepalive: true });
  }

  complete(token, answers) {
    return this.request("POST", `/sessions/${token}/complete`, { answers });
  }

  beaconUrl(token) {
    return `${this.base}/sessions/${token}/responses`;
  }
}

/** Resolves after `ms`, or earlier when `wake` is called. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.wake = null;
      resolve();
    }
    signal.wake = done;
  });
}

/**
 * Call `fn` until it succeeds, retrying network and server trouble with
 * backoff; `retryable(error)` decides what is worth another try.
 */
export async function withRetry(
  fn,
  { onRetry = () => {}, attempts = Infinity, retryable = isRetryable } = {},
) {
  const signal = { wake: null };
  const wake = () => signal.wake && signal.wake();
  window.addEventListener("online", wake);
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await fn();
      } catch (error) {
        if (!retryable(error) || attempt + 1 >= attempts) throw error;
        onRetry(error, attempt);
        await sleep(backoffDelay(attempt), signal);
      }
    }
  } finally {
    window.removeEventListener("online", wake);
  }
}

/**
 * Unsent responses and events of one session, kept in localStorage.
 *
 * `add()` stores an item and returns a promise of the server's answer to it
 * (it never rejects: a refused item resolves to `{refused: ApiError}`).
 * `drain()` resolves when nothing is left to send or the queue halted.
 * `onchange({pending, failing})` is
 * called whenever the number of unsent items or the connection state
 * changes; `onhalt(error)` when the server says the session cannot go on.
 */
export class SendQueue {
  constructor(api, token, { onchange = () => {}, onhalt = () => {}, storage } = {}) {
    this.api = api;
    this.token = token;
    this.onchange = onchange;
    this.onhalt = onhalt;
    this.storage = storage === undefined ? safeLocalStorage() : storage;
    this.key = `${STORAGE_PREFIX}${token}:queue`;
    this.items = this.load();
    this.waiters = new Map();
    this.drainers = [];
    this.failing = false;
    this.halted = null;
    this.running = false;
    this.signal = { wake: null };
    this.refused = [];
    window.addEventListener("online", () => this.wake());
  }

  get pending() {
    return this.items.length;
  }

  load() {
    if (!this.storage) return [];
    try {
      const items = JSON.parse(this.storage.getItem(this.key) || "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [];
    }
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.items.length) {
        this.storage.setItem(this.key, JSON.stringify(this.items));
      } else {
        this.storage.removeItem(this.key);
      }
    } catch {
      // Storage full or blocked: the items stay in memory and are still sent.
    }
  }

  /** Queue a trial response; the same position replaces an unsent copy. */
  addResponse(position, body) {
    return this.add({ id: `response:${position}`, kind: "response", position, body });
  }

  addEvent(kind, data = {}) {
    const body = { kind, data, at: new Date().toISOString() };
    const id = `event:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
    return this.add({ id, kind: "event", body });
  }

  add(item) {
    this.items = this.items.filter((other) => other.id !== item.id);
    this.items.push(item);
    this.save();
    const answer = new Promise((resolve) => this.waiters.set(item.id, resolve));
    this.changed();
    this.run();
    return answer;
  }

  /** Positions of responses not yet acknowledged by the server. */
  unsentPositions() {
    return this.items.filter((i) => i.kind === "response").map((i) => i.position);
  }

  /**
   * Resolves when nothing is left to send (to null), or when the server has
   * said the session cannot go on (to that ApiError; the items stay).
   */
  drain() {
    if (this.halted) return Promise.resolve(this.halted);
    if (!this.items.length) return Promise.resolve(null);
    return new Promise((resolve) => this.drainers.push(resolve));
  }

  wake() {
    if (this.signal.wake) this.signal.wake();
  }

  changed() {
    this.onchange({ pending: this.items.length, failing: this.failing });
  }

  settle(item, answer) {
    this.items = this.items.filter((other) => other.id !== item.id);
    this.save();
    const resolve = this.waiters.get(item.id);
    this.waiters.delete(item.id);
    if (resolve) resolve(answer);
  }

  async run() {
    if (this.running || this.halted) return;
    this.running = true;
    let attempt = 0;
    while (this.items.length && !this.halted) {
      try {
        await this.sendNext();
        attempt = 0;
        this.failing = false;
      } catch (error) {
        // Anything else here is a malformed answer; it is retried like a
        // network failure rather than letting the queue stop for good.
        if (!isRetryable(error)) console.error("send queue:", error);
        this.failing = true;
        this.changed();
        await sleep(backoffDelay(attempt), this.signal);
        attempt += 1;
      }
      this.changed();
    }
    this.running = false;
    if (!this.items.length) {
      for (const drainer of this.drainers.splice(0)) drainer(null);
    }
  }

  async sendNext() {
    const responses = this.items.filter((i) => i.kind === "response");
    if (responses.length > BATCH_FROM) {
      await this.sendBatch(responses.slice(0, BATCH_MAX));
      return;
    }
    const item = this.items[0];
    try {
      const answer =
        item.kind === "response"
          ? await this.api.respond(this.token, item.position, item.body)
          : await this.api.event(this.token, item.body);
      this.settle(item, answer);
    } catch (error) {
      this.refuseOrThrow(item, error);
    }
  }

  async sendBatch(items) {
    let answer;
    try {
      const responses = items.map((item) => ({ position: item.position, ...item.body }));
      answer = await this.api.respondBatch(this.token, responses);
    } catch (error) {
      if (isRetryable(error) || HALTING.has(error.status)) {
        this.refuseOrThrow(items[0], error);
        return;
      }
      // The batch as a whole was refused (e.g. too large): send one by one.
      for (const item of items) {
        await this.sendOne(item);
      }
      return;
    }
    const results = new Map(answer.results.map((r) => [r.position, r]));
    for (const item of items) {
      const result = results.get(item.position);
      if (!result) continue;
      const error = new ApiError(result.status, { error: { message: result.error } });
      if (result.status === 200) {
        this.settle(item, { position: item.position, stored: true, batch: true, ...result });
      } else if (HALTING.has(result.status)) {
        this.halt(error);
        return;
      } else {
        this.refuse(item, error);
      }
    }
  }

  async sendOne(item) {
    try {
      this.settle(item, await this.api.respond(this.token, item.position, item.body));
    } catch (error) {
      this.refuseOrThrow(item, error);
    }
  }

  refuseOrThrow(item, error) {
    if (isRetryable(error)) throw error;
    if (error instanceof ApiError && HALTING.has(error.status)) {
      this.halt(error);
      return;
    }
    this.refuse(item, error);
  }

  /** The server will never take this item as it is: drop it and say so. */
  refuse(item, error) {
    this.refused.push({ item, status: error.status, message: error.message });
    this.settle(item, { refused: error });
  }

  /** Forget every unsent item, in memory and in localStorage. */
  discard() {
    this.items = [];
    this.save();
    this.changed();
  }

  halt(error) {
    this.halted = error;
    for (const drainer of this.drainers.splice(0)) drainer(error);
    this.onhalt(error);
  }

  /**
   * Hand every unsent response to sendBeacon (on pagehide). The items stay
   * queued: the beacon's fate is unknown, and a replay is acknowledged.
   */
  beacon() {
    const responses = this.items
      .filter((i) => i.kind === "response")
      .map((i) => ({ position: i.position, ...i.body }));
    if (!responses.length || !navigator.sendBeacon) return 0;
    let sent = 0;
    for (const chunk of beaconChunks(responses)) {
      const blob = new Blob([JSON.stringify({ responses: chunk })], {
        type: "text/plain;charset=UTF-8",
      });
      if (navigator.sendBeacon(this.api.beaconUrl(this.token), blob)) sent += chunk.length;
    }
    return sent;
  }
}

/** Split responses into beacon-sized batches. */
export function beaconChunks(responses) {
  const chunks = [];
  let chunk = [];
  let size = 20;
  for (const response of responses) {
    const bytes = JSON.stringify(response).length + 1;
    if (chunk.length && (size + bytes > BEACON_MAX_BYTES || chunk.length >= BATCH_MAX)) {
      chunks.push(chunk);
      chunk = [];
      size = 20;
    }
    chunk.push(response);
    size += bytes;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

function safeLocalStorage() {
  try {
    const storage = window.localStorage;
    const probe = `${STORAGE_PREFIX}probe`;
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}
