"""Study-file validation: one test per kind of mistake, each naming key, value, rule."""

from __future__ import annotations

import pytest

from study_server.studyfile import StudyFileError, parse_study_file

MINIMAL = """
slug = "pilot-1"
title = "Pilot"
dataset = "cifar10"
[images]
real = "real"
generated = "generated"
"""


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path, text):
    with pytest.raises(StudyFileError) as info:
        parse_study_file(write(tmp_path, text))
    return info.value.problems


def test_minimal_file_gets_the_published_defaults(tmp_path):
    settings = parse_study_file(write(tmp_path, MINIMAL))
    assert settings.design == "between"
    assert settings.trials.per_session == 200
    assert settings.trials.real_fraction == 0.5
    assert settings.n_real == 100
    assert settings.timing.exposure_ms == 500
    assert settings.timing.fixation_ms == 500
    assert settings.trials.practice == 10
    assert settings.trials.checks == 5
    assert settings.trials.max_failed_checks == 1
    assert settings.trials.break_every == 50
    assert settings.recruitment.target_per_model == 25
    assert (settings.keys.real, settings.keys.generated) == ("f", "j")
    assert settings.staircase is None


def test_every_setting_can_be_expressed(tmp_path):
    text = MINIMAL.replace(
        "[images]",
        """design = "within"
[trials]
per_session = 100
real_fraction = 0.4
practice = 4
checks = 2
max_failed_checks = 0
break_every = 25
[timing]
fixation_ms = 300
exposure_ms = 0
mask_ms = 100
staircase = false
resume_limit_minutes = 10
inactive_limit_minutes = 20
[keys]
real = "d"
generated = "k"
counterbalance = false
[recruitment]
platform = "mturk"
target_per_model = 30
completion_code = "ABC_123"
completion_url = "https://example.org/done"
screenout_code = "NOPE"
screenout_url = "https://example.org/out"
[display]
size = 0
crop = "none"
min_window_width = 1024
min_window_height = 700
[texts]
consent = "Consent ü"
instructions = "Instructions"
debrief = "Debrief"
[images]
practice = "practice"
checks = "checks"
""",
    )
    settings = parse_study_file(write(tmp_path, text))
    assert settings.design == "within"
    assert settings.n_real == 40
    assert settings.timing.exposure_ms == 0
    assert settings.recruitment.platform == "mturk"
    assert str(settings.recruitment.completion_url) == "https://example.org/done"
    assert settings.texts.consent == "Consent ü"
    assert settings.images.checks == "checks"


def test_staircase_table(tmp_path):
    text = MINIMAL + "[timing.staircase]\nstart_ms = 200\nmin_ms = 17\nmax_ms = 800\n"
    text = text.replace("[images]", "[timing]\n[images]")
    # [timing] declared twice is invalid TOML; use a dotted table only.
    text = MINIMAL + "[timing.staircase]\nstart_ms = 200\nmin_ms = 17\nmax_ms = 800\n"
    stair = parse_study_file(write(tmp_path, text)).staircase
    assert (stair.start_ms, stair.min_ms, stair.max_ms) == (200, 17, 800)


def test_missing_file(tmp_path):
    with pytest.raises(StudyFileError, match="cannot read the file"):
        parse_study_file(tmp_path / "nope.toml")


def test_not_utf8(tmp_path):
    path = tmp_path / "study.toml"
    path.write_bytes(b'title = "\xff\xfe"\n')
    with pytest.raises(StudyFileError, match="not UTF-8"):
        parse_study_file(path)


def test_invalid_toml_names_the_line(tmp_path):
    found = problems(tmp_path, 'slug = "a"\ntitle = \n')
    assert len(found) == 1
    assert "not valid TOML" in found[0] and "line 2" in found[0]


def test_missing_required_key(tmp_path):
    found = problems(tmp_path, MINIMAL.replace('title = "Pilot"\n', ""))
    assert found == ["title: required key is missing"]


def test_missing_required_nested_key(tmp_path):
    found = problems(tmp_path, MINIMAL.replace('generated = "generated"\n', ""))
    assert found == ["images.generated: required key is missing"]


def test_unknown_top_level_key_lists_allowed_keys(tmp_path):
    (problem,) = problems(tmp_path, "exposure = 3\n" + MINIMAL)
    assert problem.startswith(
        "exposure: unknown key (got 3); allowed keys: slug, title"
    )


def test_unknown_nested_key_is_a_typo(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + "[trials]\nper_sesion = 100\n")
    assert problem.startswith("trials.per_sesion: unknown key (got 100)")
    assert "per_session" in problem


def test_wrong_type(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + '[trials]\nper_session = "200"\n')
    assert (
        problem == "trials.per_session: got '200'; allowed: should be a valid integer"
    )


def test_out_of_range(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + "[trials]\nreal_fraction = 1.5\n")
    assert problem == (
        "trials.real_fraction: got 1.5; allowed: should be less than or equal to 1"
    )


def test_negative_exposure(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + "[timing]\nexposure_ms = -20\n")
    assert problem == (
        "timing.exposure_ms: got -20; allowed: should be greater than or equal to 0"
    )


def test_bad_choice(tmp_path):
    (problem,) = problems(
        tmp_path, MINIMAL.replace("[images]", 'design = "mixed"\n[images]')
    )
    assert problem == "design: got 'mixed'; allowed: should be 'between' or 'within'"


def test_bad_platform(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + '[recruitment]\nplatform = "zoom"\n')
    assert "recruitment.platform: got 'zoom'" in problem
    assert "'prolific', 'mturk' or 'direct'" in problem


def test_bad_slug(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL.replace('"pilot-1"', '"Pilot 1"'))
    assert problem.startswith("slug: got 'Pilot 1'; allowed: lower-case letters")


def test_bad_completion_code_and_url(tmp_path):
    found = problems(
        tmp_path,
        MINIMAL + '[recruitment]\ncompletion_code = "a b"\ncompletion_url = "done"\n',
    )
    assert found[0].startswith(
        "recruitment.completion_code: got 'a b'; allowed: 1 to 64"
    )
    assert found[1].startswith("recruitment.completion_url: got 'done'; allowed:")


def test_same_key_for_both_answers(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + '[keys]\nreal = "j"\n')
    assert problem == "keys.generated: got 'j'; must differ from keys.real ('j')"


def test_more_failures_allowed_than_checks(tmp_path):
    text = MINIMAL + "[trials]\nchecks = 2\nmax_failed_checks = 3\n"
    (problem,) = problems(tmp_path, text)
    assert (
        problem == "trials.max_failed_checks: got 3; allowed: at most trials.checks (2)"
    )


def test_real_fraction_must_give_whole_trials(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + "[trials]\nper_session = 25\n")
    assert problem.startswith(
        "trials.real_fraction: got 0.5; per_session x real_fraction"
    )
    assert "(here 12.5)" in problem


def test_staircase_not_a_bool_or_table(tmp_path):
    (problem,) = problems(tmp_path, MINIMAL + '[timing]\nstaircase = "yes"\n')
    assert problem == "timing.staircase: got 'yes'; allowed: true, false or a table"


def test_staircase_start_outside_its_range(tmp_path):
    text = MINIMAL + "[timing.staircase]\nstart_ms = 5000\nmax_ms = 1000\n"
    (problem,) = problems(tmp_path, text)
    assert problem == (
        "timing.staircase.start_ms: got 5000; allowed: between min_ms (16) and "
        "max_ms (1000)"
    )


def test_staircase_needs_timed_exposure(tmp_path):
    text = MINIMAL + "[timing]\nexposure_ms = 0\nstaircase = true\n"
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("timing.staircase: a staircase needs a timed exposure")


def test_every_mistake_is_reported_at_once(tmp_path):
    text = (
        'slug = "Bad Slug"\ntitle = ""\ndataset = "x"\nfoo = 1\n'
        '[trials]\nper_session = -1\n[keys]\nreal = "j"\n'
    )
    found = problems(tmp_path, text)
    keys = sorted(p.split(":")[0] for p in found)
    assert keys == sorted(
        ["slug", "title", "foo", "trials.per_session", "images", "keys.generated"]
    )


def test_error_message_names_the_file(tmp_path):
    with pytest.raises(StudyFileError) as info:
        parse_study_file(write(tmp_path, "slug = 1\n"))
    assert str(info.value).startswith(str(tmp_path / "study.toml"))
