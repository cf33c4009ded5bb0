"""Creating and updating studies from study files, with their stimuli.

:func:`load_study` validates the whole study (file, folders, enough images for
the design) before it writes anything. Images are normalised into a staging
folder first and moved into the content store only when the study is valid;
the database changes happen in one transaction.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from stimuli.importer import (
    FolderProblems,
    ImportReport,
    import_sources,
    study_image_sources,
)
from stimuli.normalize import StimulusImportError
from stimuli.store import ContentStore

from ..db import db
from ..models import Event, Session, Stimulus, Study
from ..studyfile import StudyFileError, StudySettings, parse_study_file

# Settings that shape trial lists; they cannot change once sessions exist.
FROZEN_ONCE_STARTED = ("dataset", "design", "trials", "timing", "keys", "display")


@dataclass
class LoadReport:
    """What :func:`load_study` did: the study, counts and skipped files."""

    study: Study
    created: bool
    added: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: int = 0
    import_report: ImportReport | None = None

    def lines(self) -> list[str]:
        """A human-readable summary for the command line."""
        verb = "created" if self.created else "updated"
        out = [f"Study {self.study.slug!r} {verb} (status {self.study.status})."]
        for (role, source), n in sorted(self.added.items()):
            out.append(f"  added {n:5d} {role} image(s) from {source}")
        if self.kept:
            out.append(f"  kept  {self.kept:5d} image(s) already in the study")
        report = self.import_report
        if report is not None:
            for problem in report.problems:
                out.append(f"  skipped {problem.path}: {problem.reason}")
            for dup in report.duplicates:
                out.append(f"  duplicate {dup.path}: same image as {dup.first_path}")
            for image in report.converted:
                out.append(
                    f"  converted {image.original_path}: {'; '.join(image.notes)}"
                )
        return out


def _needed_per_model(settings: StudySettings, n_models: int) -> int:
    n_generated = settings.trials.per_session - settings.n_real
    if settings.design == "between":
        return n_generated
    return math.ceil(n_generated / max(n_models, 1))


def check_design(settings: StudySettings, report: ImportReport) -> list[str]:
    """Return the problems that make the images unusable for the design."""
    counts: Counter[tuple[str, str]] = Counter(
        (image.role, image.source) for image in report.imported
    )
    models = sorted({s for (role, s) in counts if role == "main" and s != "real"})
    problems = []
    n_real = counts[("main", "real")]
    if n_real < settings.n_real:
        problems.append(
            f"images.real: {n_real} usable image(s); a session needs "
            f"{settings.n_real} (trials.per_session x trials.real_fraction) "
            "and no image repeats within a session"
        )
    if not models and settings.trials.per_session > settings.n_real:
        problems.append("images.generated: no model folder holds a usable image")
    need = _needed_per_model(settings, len(models))
    for model in models:
        if counts[("main", model)] < need:
            problems.append(
                f"images.generated: model {model!r} has {counts[('main', model)]} "
                f"usable image(s); a session needs {need}"
            )
    for role, key, wanted in (
        ("practice", "practice", settings.trials.practice),
        ("check", "checks", settings.trials.checks),
    ):
        have = sum(n for (r, _), n in counts.items() if r == role)
        if have < wanted:
            problems.append(
                f"images.{key}: {have} usable image(s); trials.{key} asks for "
                f"{wanted} per session"
            )
    return problems


def _frozen_changes(study: Study, settings: StudySettings) -> list[str]:
    new = settings.model_dump(mode="json")
    return [key for key in FROZEN_ONCE_STARTED if study.settings.get(key) != new[key]]


def _promote(staging: ContentStore, store: ContentStore, digests: set[str]) -> None:
    for digest in digests:
        target = store.path(digest)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging.path(digest), target)


def load_study(
    path: str | Path, store_root: str | Path, *, progress: bool = True
) -> LoadReport:
    """Validate a study file and create or update its study and stimuli.

    Raises
    ------
    StudyFileError
        When the file, its folders or its images cannot make a valid study;
        nothing is written then.
    """
    path = Path(path)
    settings = parse_study_file(path)
    try:
        sources = study_image_sources(settings.images.model_dump(), path.parent)
    except FolderProblems as exc:
        raise StudyFileError(path, exc.problems) from None
    except StimulusImportError as exc:
        raise StudyFileError(path, [str(exc)]) from None

    store = ContentStore(Path(store_root))
    staging_dir = Path(store_root) / ".staging" / uuid.uuid4().hex
    staging = ContentStore(staging_dir)
    try:
        size = settings.display.size or None
        report = import_sources(
            sources,
            size=size,
            crop=settings.display.crop,
            store=staging,
            progress=progress,
        )
        problems = check_design(settings, report)
        study = db.session.scalar(select(Study).where(Study.slug == settings.slug))
        if study is not None:
            problems += _update_problems(study, settings, report)
        if problems:
            raise StudyFileError(path, problems)
        _promote(staging, store, {image.digest for image in report.imported})
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return _write(study, settings, report)


def _update_problems(
    study: Study, settings: StudySettings, report: ImportReport
) -> list[str]:
    n_sessions = db.session.scalar(
        select(func.count()).select_from(Session).where(Session.study_id == study.id)
    )
    if not n_sessions:
        return []
    problems = [
        f"{key}: cannot change after sessions have started ({n_sessions} so far); "
        "load the new design under a new slug"
        for key in _frozen_changes(study, settings)
    ]
    new_digests = {image.digest for image in report.imported}
    gone = db.session.scalar(
        select(func.count())
        .select_from(Stimulus)
        .where(
            Stimulus.study_id == study.id,
            Stimulus.active.is_(True),
            Stimulus.digest.not_in(new_digests),
        )
    )
    labels = {image.digest: (image.role, image.source) for image in report.imported}
    relabelled = [
        s.original_path or s.digest[:16]
        for s in db.session.scalars(
            select(Stimulus).where(Stimulus.study_id == study.id)
        )
        if s.digest in labels and labels[s.digest] != (s.role, s.source)
    ]
    if relabelled:
        problems.append(
            f"images: {len(relabelled)} image(s) moved to another source or role "
            f"(e.g. {relabelled[0]}); labels cannot change after sessions have started"
        )
    if gone:
        problems.append(
            f"images: {gone} image(s) of the study are missing from the folders; "
            "images cannot be removed after sessions have started"
        )
    return problems


def _write(
    study: Study | None, settings: StudySettings, report: ImportReport
) -> LoadReport:
    created = study is None
    if study is None:
        study = Study(slug=settings.slug, status="open")
        db.session.add(study)
    study.title = settings.title
    study.dataset = settings.dataset
    study.design = settings.design
    study.settings = settings.model_dump(mode="json")
    study.settings_digest = settings.digest()
    db.session.flush()

    existing = {
        s.digest: s
        for s in db.session.scalars(
            select(Stimulus).where(Stimulus.study_id == study.id)
        )
    }
    result = LoadReport(study=study, created=created, import_report=report)
    seen = set()
    for image in report.imported:
        seen.add(image.digest)
        old = existing.get(image.digest)
        if old is not None:
            old.active = True
            old.role, old.source, old.is_real = image.role, image.source, image.is_real
            result.kept += 1
            continue
        db.session.add(
            Stimulus(
                study_id=study.id,
                digest=image.digest,
                source=image.source,
                is_real=image.is_real,
                role=image.role,
                width=image.width,
                height=image.height,
                original_path=str(image.original_path),
            )
        )
        result.added[(image.role, image.source)] += 1
    for digest, stimulus in existing.items():
        if digest not in seen:
            stimulus.active = False
    db.session.add(
        Event(
            study_id=study.id,
            kind="study_loaded",
            actor="system",
            data={
                "created": created,
                "settings_digest": study.settings_digest,
                "added": sum(result.added.values()),
                "kept": result.kept,
            },
        )
    )
    db.session.commit()
    return result
