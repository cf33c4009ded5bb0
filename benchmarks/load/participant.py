"""A simulated participant: a small state machine over the participant API.

Each participant starts a session, does the device check, fetches each block
(and, if asked, its images), answers every trial after a think time, and
completes. It keeps its own log of every response the server acknowledged
(200 stored, or 200 replay) with the exact payload sent, for reconciliation
against the database afterwards.

Every request is retried with capped exponential backoff (and jitter) until
it is answered or the run's deadline passes: connection errors, timeouts,
5xx and 429 are retried; any other unexpected status ends the participant
with that error recorded. A retry sends the same payload. With ``drop`` > 0
a request is first sent on a raw connection that is closed before the answer
is read (the server may or may not have stored it), then retried normally.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import aiohttp

API = "/api/v1"
RETRIED_STATUSES = {429, 500, 502, 503, 504}
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 1.0


class Step(Enum):
    START = "start"
    DEVICE = "device"
    BLOCKS = "blocks"
    COMPLETE = "complete"
    DONE = "done"
    FAILED = "failed"


class GaveUp(Exception):
    """The run's deadline passed, or the server answered an unexpected status."""


@dataclass
class RunStats:
    """What all participants of a run saw, shared between them."""

    response_latencies_s: list[float] = field(default_factory=list)
    # When each of those answers arrived (time.monotonic()).
    response_times: list[float] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    dropped: int = 0
    connection_errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    replays: int = 0
    images: int = 0


@dataclass(frozen=True)
class Behaviour:
    """How participants act: think time, images, dropped requests."""

    think_s: float = 0.5
    fetch_images: bool = False
    drop: float = 0.0
    request_timeout_s: float = 15.0


class Participant:
    """One simulated participant; :meth:`run` does a whole session.

    ``acks`` maps each acknowledged position to the payload sent for it.
    """

    def __init__(
        self,
        index: int,
        slug: str,
        http: aiohttp.ClientSession,
        base_url: str,
        behaviour: Behaviour,
        stats: RunStats,
        deadline: float,
        seed: int,
    ):
        self.index = index
        self.slug = slug
        self.http = http
        self.base_url = base_url
        self.behaviour = behaviour
        self.stats = stats
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.external_id = f"load{seed}x{index}"
        self.step = Step.START
        self.token: str | None = None
        self.state: dict[str, Any] = {}
        self.acks: dict[int, dict[str, Any]] = {}
        self.completion: dict[str, Any] | None = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # Requests

    async def _dropped(self, method: str, path: str, body: Any) -> None:
        """Send the whole request, then close the connection without reading."""
        host, port = self.base_url.removeprefix("http://").split(":")
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(head + data)
            await writer.drain()
            # Sometimes the server has begun, sometimes it has finished.
            await asyncio.sleep(self.rng.uniform(0, 0.02))
            writer.transport.abort()
        except OSError:
            pass
        self.stats.dropped += 1

    async def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, Any]:
        """Send until an answer with a status in ``ok``; return status and JSON."""
        attempt = 0
        timeout = aiohttp.ClientTimeout(total=self.behaviour.request_timeout_s)
        while True:
            if time.monotonic() > self.deadline:
                raise GaveUp(f"{method} {path}: the run's time limit passed")
            if self.behaviour.drop and self.rng.random() < self.behaviour.drop:
                await self._dropped(method, path, body)
            self.stats.requests += 1
            began = time.perf_counter()
            try:
                async with self.http.request(
                    method, self.base_url + path, json=body, timeout=timeout
                ) as answer:
                    payload = await answer.read()
                    status = answer.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                kind = type(exc).__name__
                self.stats.connection_errors += 1
                self.stats.error_kinds[kind] = self.stats.error_kinds.get(kind, 0) + 1
                status, payload = None, b""
            elapsed = time.perf_counter() - began
            if status is not None:
                self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
                if method == "PUT":
                    self.stats.response_latencies_s.append(elapsed)
                    self.stats.response_times.append(time.monotonic())
                if status in ok:
                    return status, json.loads(payload) if payload else None
                if status not in RETRIED_STATUSES:
                    text = payload[:300].decode(errors="replace")
                    raise GaveUp(f"{method} {path}: {status} {text}")
            attempt += 1
            self.stats.retries += 1
            backoff = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(attempt, 10))
            await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.0))

    # Steps

    def start_body(self) -> dict[str, Any]:
        return {
            "platform": "prolific",
            "params": {
                "PROLIFIC_PID": self.external_id,
                "STUDY_ID": "loadstudy",
                "SESSION_ID": f"s{self.external_id}",
            },
            "consent": True,
            "window": {"width": 1280, "height": 800},
            "screen": {"width": 1920, "height": 1080},
            "device_pixel_ratio": 1,
        }

    def response_body(self, trial: dict[str, Any], t_ms: float) -> dict[str, Any]:
        """A plausible answer; values are exact in binary so they round-trip."""
        frames = trial["exposure_frames"]
        rt_ms = self.rng.randint(300, 3000) + self.rng.choice((0.0, 0.25, 0.5))
        onset = round(t_ms, 1)
        return {
            "response": self.rng.choice(("real", "generated")),
            "rt_ms": rt_ms,
            "exposure_ms": round(frames * 16.68, 2),
            "intended_frames": frames,
            "achieved_frames": frames if self.rng.random() > 0.05 else frames + 1,
            "frame_interval_ms": 16.68,
            "onset_ms": onset,
            "offset_ms": round(onset + frames * 16.68, 1),
            "visibility_lost": False,
            "focus_lost": self.rng.random() < 0.02,
            "key": "f",
            "client_sent_at": "2026-12-03T12:00:00.000Z",
        }

    async def answer(self, trial: dict[str, Any]) -> None:
        position = trial["position"]
        body = self.response_body(trial, (time.monotonic() % 1e6) * 1000)
        path = f"{API}/sessions/{self.token}/trials/{position}"
        _, ack = await self.call("PUT", path, body)
        if ack.get("position") != position or ack.get("stored") is not True:
            raise GaveUp(f"PUT {path}: acknowledgement does not match: {ack}")
        self.acks[position] = body
        self.stats.ack_times.append(time.monotonic())
        if ack["replay"]:
            self.stats.replays += 1

    async def fetch_images(self, trials: list[dict[str, Any]]) -> None:
        for trial in trials:
            timeout = aiohttp.ClientTimeout(total=self.behaviour.request_timeout_s)
            for _ in range(20):
                try:
                    async with self.http.get(
                        self.base_url + trial["image_url"], timeout=timeout
                    ) as answer:
                        data = await answer.read()
                        if answer.status == 200 and data.startswith(b"\x89PNG"):
                            self.stats.images += 1
                            break
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.2)

    async def run(self) -> None:
        """Do the whole session; record failure instead of raising."""
        self.started_at = time.monotonic()
        try:
            await self._run()
            self.step = Step.DONE
        except GaveUp as exc:
            self.error = str(exc)
            self.step = Step.FAILED
        self.finished_at = time.monotonic()

    async def _run(self) -> None:
        path = f"{API}/studies/{self.slug}/sessions"
        _, self.state = await self.call("POST", path, self.start_body(), ok=(200, 201))
        self.token = self.state["token"]
        session = f"{API}/sessions/{self.token}"

        self.step = Step.DEVICE
        device = {"frame_interval_ms": 16.68, "n_frames": 120, "refresh_hz": 59.95}
        await self.call("POST", f"{session}/device", device)

        self.step = Step.BLOCKS
        for block in self.state["blocks"]:
            _, served = await self.call("GET", f"{session}/blocks/{block['block']}")
            if self.behaviour.fetch_images:
                await self.fetch_images(served["trials"])
            for trial in served["trials"]:
                think = self.behaviour.think_s * self.rng.uniform(0.5, 1.5)
                await asyncio.sleep(think)
                await self.answer(trial)

        self.step = Step.COMPLETE
        _, self.completion = await self.call("POST", f"{session}/complete", {})
        if self.completion.get("status") != "completed":
            raise GaveUp(f"complete: {self.completion}")
