"""A participant at the keyboard: drives the runner page through a session.

:class:`KeyboardParticipant` uses only the keyboard (Tab, Space, Enter and the
response keys), reads what is on screen from the page, and looks up the
truth of a trial in the database (test only) to answer attention checks
correctly. Hooks let a test reload the page or go offline at a given trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from flask import Flask
from sqlalchemy import func, select

# What the runner shows, as one word; the page marks each screen by an id.
SCREEN_JS = """() => {
  const stage = document.querySelector('.stage');
  if (stage && stage.dataset.phase === 'response') {
    return 'response:' + stage.dataset.position;
  }
  const start = document.getElementById('block-start');
  if (start && !start.disabled && document.activeElement === start) return 'block';
  if (document.getElementById('consent-agree')) return 'consent';
  if (document.getElementById('instructions-continue')) return 'instructions';
  if (document.getElementById('device-result')) return 'device';
  if (document.getElementById('debrief-comments')) return 'debrief';
  if (document.querySelector('.completion-code')) return 'done';
  if (document.getElementById('saving-status')) return 'saving';
  const retry = document.getElementById('preload-retry');
  if (retry && document.activeElement === retry) return 'retry';
  const heading = document.querySelector('#app h1');
  return heading ? 'other:' + heading.textContent : null;
}"""

# Screens that pass by themselves ("Starting", "Screen check" while measuring);
# one that stays longer than this is reported as stuck.
STUCK_S = 40.0


@dataclass
class Trial:
    position: int
    block: int
    kind: str
    is_real: bool


@dataclass
class KeyboardParticipant:
    """One participant in one browser page."""

    page: Any
    app: Flask
    study_id: int
    comments: str = "Thank you, it went well."
    fail_checks: bool = False
    # The query parameter that names the participant on the arrival URL.
    id_param: str = "pid"
    # Called with (participant, screen) before acting on a screen; when it
    # returns True it has dealt with the screen itself.
    on_screen: Callable[[KeyboardParticipant, str], bool] | None = None
    # Called with (participant, position) before and after each answer.
    before_answer: Callable[[KeyboardParticipant, int], None] | None = None
    after_answer: Callable[[KeyboardParticipant, int], None] | None = None
    answered: list[int] = field(default_factory=list)
    screens: list[str] = field(default_factory=list)
    offline_since: float | None = None
    offline_s: float = 10.0
    saving_texts: list[str] = field(default_factory=list)

    @property
    def external_id(self) -> str:
        query = parse_qs(urlparse(self.page.url).query)
        return query[self.id_param][0]

    def session(self) -> Any:
        from study_server.db import db
        from study_server.models import Participant, Session

        with self.app.app_context():
            session = db.session.scalar(
                select(Session)
                .join(Participant)
                .where(
                    Session.study_id == self.study_id,
                    Participant.external_id == self.external_id,
                )
            )
            db.session.expunge_all()
            return session

    def last_block(self) -> int:
        from study_server.db import db
        from study_server.models import Trial as TrialRow

        with self.app.app_context():
            return db.session.scalar(
                select(func.max(TrialRow.block)).where(
                    TrialRow.session_id == self.session().id
                )
            )

    def trial(self, position: int) -> Trial | None:
        from study_server.db import db
        from study_server.models import Trial as TrialRow

        with self.app.app_context():
            row = db.session.scalar(
                select(TrialRow).where(
                    TrialRow.session_id == self.session().id,
                    TrialRow.position == position,
                )
            )
            if row is None:
                return None
            return Trial(row.position, row.block, row.kind, row.is_real)

    def trial_row_response(self, position: int) -> str | None:
        """The response stored for ``position``, or None."""
        from study_server.db import db
        from study_server.models import Trial as TrialRow

        with self.app.app_context():
            return db.session.scalar(
                select(TrialRow.response).where(
                    TrialRow.session_id == self.session().id,
                    TrialRow.position == position,
                )
            )

    def key_for(self, response: str) -> str:
        """The participant's key for ``response``, as the page shows it."""
        kbd = self.page.locator(f".response-{response} kbd").first
        return kbd.inner_text().strip().lower()

    def screen(self, timeout_ms: int = 1000) -> str | None:
        """The current screen, waiting up to ``timeout_ms`` for a known one."""
        try:
            handle = self.page.wait_for_function(SCREEN_JS, timeout=timeout_ms)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutError":
                return None
            raise
        return handle.json_value()

    def go_offline(self) -> None:
        self.page.context.set_offline(True)
        self.offline_since = time.monotonic()

    def back_online_when_due(self) -> None:
        if self.offline_since is None:
            return
        if time.monotonic() - self.offline_since >= self.offline_s:
            self.page.context.set_offline(False)
            self.offline_since = None

    def answer(self, position: int) -> None:
        """Answer checks right (or wrong if ``fail_checks``), others alternately."""
        trial = self.trial(position)
        if trial.kind == "check":
            response = "real" if trial.is_real != self.fail_checks else "generated"
        else:
            response = "real" if position % 2 else "generated"
        self.page.keyboard.press(self.key_for(response))
        self.answered.append(position)

    def consent(self) -> None:
        keyboard = self.page.keyboard
        keyboard.press("Tab")
        keyboard.press("Space")
        keyboard.press("Tab")
        keyboard.press("Enter")

    def debrief(self) -> None:
        keyboard = self.page.keyboard
        keyboard.press("Shift+Tab")
        keyboard.type(self.comments)
        keyboard.press("Tab")
        keyboard.press("Enter")

    def note_saving(self) -> None:
        text = self.page.evaluate(
            "() => document.getElementById('saving-status')?.textContent ?? null"
        )
        if text is not None and text not in self.saving_texts:
            self.saving_texts.append(text)

    def wait_until_not(self, screen: str) -> None:
        """Wait until the page has left ``screen`` (after a key press)."""
        self.page.wait_for_function(
            f"() => ({SCREEN_JS})() !== {screen!r}", timeout=20_000
        )

    def run(self, deadline_s: float = 150.0) -> str:
        """Go through every screen until the completion code; return it."""
        end = time.monotonic() + deadline_s
        waiting_since = time.monotonic()
        while time.monotonic() < end:
            self.back_online_when_due()
            screen = self.screen()
            if screen == "saving":
                self.note_saving()
            if screen is None or screen == "saving" or screen.startswith("other:"):
                if time.monotonic() - waiting_since > STUCK_S:
                    text = self.page.locator("#app").inner_text()
                    raise AssertionError(
                        f"stuck on {screen!r}: {text!r}; {self.screens}"
                    )
                continue
            waiting_since = time.monotonic()
            self.screens.append(screen)
            if self.on_screen is not None and self.on_screen(self, screen):
                continue
            if screen == "done":
                return self.page.locator(".completion-code").inner_text().strip()
            position = None
            if screen.startswith("response:"):
                position = int(screen.split(":")[1])
                if self.before_answer is not None:
                    self.before_answer(self, position)
                self.answer(position)
            elif screen == "consent":
                self.consent()
            elif screen == "debrief":
                self.debrief()
            else:
                self.page.keyboard.press("Enter")
            self.wait_until_not(screen)
            if position is not None and self.after_answer is not None:
                self.after_answer(self, position)
        raise AssertionError(f"session did not finish; screens seen: {self.screens}")
