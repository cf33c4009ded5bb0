"""Study files: a TOML description of one study's design (DESIGN.md §5).

:func:`parse_study_file` reads and validates a file and returns
:class:`StudySettings`; every mistake is collected and reported at once as
``key: got <value>; <what is allowed>``. Defaults follow the published protocol
(200 trials, half real, 500 ms exposure, 10 practice trials, 5 checks of which
1 may be failed, a break every 50 trials, 25 participants per model).

A complete example::

    slug = "cifar10-pilot"
    title = "Real or generated?"
    dataset = "cifar10"
    design = "between"              # or "within"

    [trials]
    per_session = 200               # main trials; practice and checks come on top
    real_fraction = 0.5
    practice = 10
    checks = 5
    max_failed_checks = 1
    break_every = 50

    [timing]
    fixation_ms = 500
    exposure_ms = 500               # 0 = until response
    mask_ms = 0                     # 0 = no mask
    staircase = false               # adaptive exposure (HYPE-style)
    resume_limit_minutes = 30
    inactive_limit_minutes = 60

    [keys]
    real = "f"
    generated = "j"
    counterbalance = true           # swap the keys for half the participants

    [recruitment]
    platform = "prolific"           # prolific, mturk or direct
    target_per_model = 25
    completion_code = "C1A2B3"
    screenout_code = "S9Z8Y7"

    [display]
    size = 256                      # square display size in px; 0 keeps the size
    crop = "center"                 # center or none

    [texts]
    consent = "..."
    instructions = "..."
    debrief = "..."

    [images]                        # folders, relative to the study file
    real = "images/real"
    generated = "images/generated"  # one subfolder per model
    practice = "images/practice"    # real/ and generated/ subfolders
    checks = "images/checks"        # real/ and/or generated/ subfolders
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationError,
    model_validator,
)

Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", strip_whitespace=True)
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Code = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$", strip_whitespace=True)
]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]$")]

# How each pydantic error type is explained to the person editing the file.
_ALLOWED = {
    "string_pattern_mismatch": {
        "slug": "lower-case letters, digits and '-', starting with a letter or "
        "digit, at most 64 characters",
        "completion_code": "1 to 64 letters, digits, '_' or '-'",
        "screenout_code": "1 to 64 letters, digits, '_' or '-'",
        "real": "one lower-case letter or digit",
        "generated": "one lower-case letter or digit",
    },
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Trials(_Section):
    per_session: int = Field(200, ge=2, le=5000)
    real_fraction: float = Field(0.5, ge=0.0, le=1.0)
    practice: int = Field(10, ge=0, le=200)
    checks: int = Field(5, ge=0, le=100)
    max_failed_checks: int = Field(1, ge=0, le=100)
    break_every: int = Field(50, ge=1, le=5000)

    @model_validator(mode="after")
    def _consistent(self) -> Trials:
        problems = []
        if self.max_failed_checks > self.checks:
            problems.append(
                f"trials.max_failed_checks: got {self.max_failed_checks}; "
                f"allowed: at most trials.checks ({self.checks})"
            )
        n_real = self.per_session * self.real_fraction
        if abs(n_real - round(n_real)) > 1e-9:
            problems.append(
                f"trials.real_fraction: got {self.real_fraction}; "
                "per_session x real_fraction must be a whole number of trials "
                f"(here {n_real:g})"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


class Staircase(_Section):
    """A 1-up/3-down staircase on exposure in frames (converges near 79% correct)."""

    start_ms: float = Field(500, gt=0, le=10_000)
    min_ms: float = Field(16, gt=0, le=10_000)
    max_ms: float = Field(1000, gt=0, le=10_000)
    step_frames: int = Field(2, ge=1, le=60)
    down_after: int = Field(3, ge=1, le=10)

    @model_validator(mode="after")
    def _consistent(self) -> Staircase:
        if not self.min_ms <= self.start_ms <= self.max_ms:
            raise ValueError(
                f"timing.staircase.start_ms: got {self.start_ms:g}; allowed: "
                f"between min_ms ({self.min_ms:g}) and max_ms ({self.max_ms:g})"
            )
        return self


class Timing(_Section):
    fixation_ms: float = Field(500, ge=0, le=5_000)
    exposure_ms: float = Field(500, ge=0, le=60_000)
    mask_ms: float = Field(0, ge=0, le=5_000)
    staircase: bool | Staircase = False
    resume_limit_minutes: float = Field(30, gt=0, le=7 * 24 * 60)
    inactive_limit_minutes: float = Field(60, gt=0, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _consistent(self) -> Timing:
        if self.staircase and self.exposure_ms == 0:
            raise ValueError(
                "timing.staircase: a staircase needs a timed exposure; "
                "timing.exposure_ms is 0 (until response)"
            )
        return self


class Keys(_Section):
    real: Key = "f"
    generated: Key = "j"
    counterbalance: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Keys:
        if self.real == self.generated:
            raise ValueError(
                f"keys.generated: got {self.generated!r}; must differ from "
                f"keys.real ({self.real!r})"
            )
        return self


class Recruitment(_Section):
    platform: Literal["prolific", "mturk", "direct"] = "direct"
    target_per_model: int = Field(25, ge=1, le=100_000)
    completion_code: Code | None = None
    completion_url: HttpUrl | None = None
    screenout_code: Code | None = None
    screenout_url: HttpUrl | None = None


class Display(_Section):
    size: int = Field(256, ge=0, le=4096)
    crop: Literal["center", "none"] = "center"
    min_window_width: int = Field(800, ge=0, le=10_000)
    min_window_height: int = Field(600, ge=0, le=10_000)


class Texts(_Section):
    consent: Text = (
        "You are invited to take part in a study about how people perceive "
        "images. You will see images one at a time and decide whether each is a "
        "real photograph or was generated by a computer. Your answers are stored "
        "under a pseudonym and used for research only. You may stop at any time."
    )
    instructions: Text = (
        "Each image is shown briefly after a cross in the middle of the screen. "
        "Then decide: was it a real photograph, or generated by a computer? "
        "Answer with the keys or the buttons shown. Go with your first "
        "impression."
    )
    debrief: Text = (
        "Thank you. Half of the images you saw were real photographs and half "
        "were made by generative models. Your answers help measure how realistic "
        "such models are."
    )


class Images(_Section):
    real: str = Field(min_length=1)
    generated: str = Field(min_length=1)
    practice: str | None = None
    checks: str | None = None


class StudySettings(_Section):
    """The validated contents of a study file."""

    slug: Slug
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    dataset: Slug
    design: Literal["between", "within"] = "between"
    trials: Trials = Trials()
    timing: Timing = Timing()
    keys: Keys = Keys()
    recruitment: Recruitment = Recruitment()
    display: Display = Display()
    texts: Texts = Texts()
    images: Images

    @property
    def n_real(self) -> int:
        """Real main trials per session."""
        return round(self.trials.per_session * self.trials.real_fraction)

    @property
    def staircase(self) -> Staircase | None:
        stair = self.timing.staircase
        if stair is True:
            return Staircase(start_ms=self.timing.exposure_ms or 500)
        return stair or None

    def digest(self) -> str:
        """Return a digest of the settings, stable across key order."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


class StudyFileError(ValueError):
    """A study file cannot be read or is invalid; ``problems`` lists every mistake."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


def _section_keys(loc: list[str]) -> list[str]:
    """Return the keys allowed in the table that ``loc`` points into."""
    model: Any = StudySettings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None:
            return []
        candidates = getattr(field.annotation, "__args__", (field.annotation,))
        tables = [
            c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)
        ]
        if not tables:
            return []
        model = tables[0]
    return list(model.model_fields)


def _describe(error: dict[str, Any]) -> str | None:
    # Union members of timing.staircase (bool | Staircase) appear in the
    # location as "bool" and "Staircase" (or a validator wrapping Staircase).
    raw = [str(part) for part in error["loc"]]
    members = [i for i, p in enumerate(raw) if p == "bool" or "Staircase" in p]
    loc = [p for i, p in enumerate(raw) if i not in members and "function-" not in p]
    key = ".".join(loc) or "(file)"
    kind = error["type"]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if members and members[-1] == len(raw) - 1:
        # An error about timing.staircase as a whole: one line for a value that
        # is neither true/false nor a table; a table's own errors have keys.
        if raw[-1] != "bool" or isinstance(error["input"], dict):
            return None
        return f"{key}: got {error['input']!r}; allowed: true, false or a table"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind == "extra_forbidden":
        allowed = ", ".join(_section_keys(loc)) or "none"
        return f"{key}: unknown key (got {error['input']!r}); allowed keys: {allowed}"
    message = error["msg"].replace("Input should", "should")
    allowed = _ALLOWED.get(kind, {}).get(loc[-1] if loc else "", message)
    return f"{key}: got {error['input']!r}; allowed: {allowed}"


def _explain(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        described = _describe(error)
        for line in (described or "").split("\n"):
            if line and line not in problems:
                problems.append(line)
    return problems


def validate_settings(
    data: dict[str, Any], path: Path | str = "<study>"
) -> StudySettings:
    """Validate a parsed study file; raise :class:`StudyFileError` on any problem."""
    try:
        return StudySettings.model_validate(data)
    except ValidationError as exc:
        raise StudyFileError(path, _explain(exc)) from None


def parse_study_file(path: Path | str) -> StudySettings:
    """Read and validate a TOML study file.

    Raises
    ------
    StudyFileError
        When the file is missing, is not valid TOML, or breaks any rule; the
        message names every bad key, its value and what is allowed.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyFileError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise StudyFileError(path, ["the file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(path, [f"not valid TOML: {exc}"]) from None
    return validate_settings(data, path)
