"""``analysis metrics``: encoder features and distribution metrics."""

from __future__ import annotations

import os

# the hub must be offline before anything imports huggingface_hub
os.environ["HF_HUB_OFFLINE"] = "1"

import csv
import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd

from analysis.metrics.defaults import (
    DEFAULT_ENCODERS,
    DEFAULT_METRICS,
    EXTRACTION_DEFAULTS,
    METRIC_DEFAULTS,
    METRIC_HELP,
    SEED,
)
from analysis.metrics.devices import DEVICES_TEXT, check_device
from analysis.metrics.featureset import (
    FeatureSet,
    load_feature_file,
    merge_shards,
    save_feature_file,
)
from analysis.metrics.folders import list_images, parse_shard
from analysis.metrics.registry import ENCODERS, get_encoder_spec
from analysis.metrics.table import (
    METRIC_NAMES,
    UNKNOWN_WEIGHTS,
    write_metric_table,
)
from stimuli.folders import output_folder_for_run

FEATURE_SUFFIX = ".npz"


def _require_metrics_extra(task: str) -> None:
    """Stop with what to install when torch or timm is missing.

    The light install (``pip install -e .``) has neither; feature files and
    ``--merge-shards`` work without them, image folders do not.
    """
    for module in ("torch", "timm"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            missing = error.name or module
            raise click.ClickException(
                f"{task} needs the metrics extra (torch, timm), and {missing} is "
                "not installed; install it with pip install -e '.[metrics]' (or "
                "make install-dev), or give feature files (.npz) instead"
            ) from None


def _metric_setting_options(command: Callable) -> Callable:
    """Add one ``--option`` per metric setting of the shared defaults table."""
    for name in reversed(list(METRIC_DEFAULTS)):
        default = METRIC_DEFAULTS[name]
        kind = click.IntRange(min=0) if isinstance(default, int) else float
        command = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=default,
            show_default=True,
            help=METRIC_HELP[name],
        )(command)
    return command


class _Input:
    """One command-line input: an image folder or a feature file."""

    def __init__(self, text: str, role: str):
        name, sep, path = text.partition("=")
        if not sep or not name or os.path.exists(text):
            name, path = "", text
        self.path = Path(path).expanduser()
        self.role = role
        if not self.path.exists():
            raise click.BadParameter(f"{self.path} does not exist", param_hint=role)
        self.is_file = self.path.is_file()
        if self.is_file and self.path.suffix != FEATURE_SUFFIX:
            raise click.BadParameter(
                f"{self.path} is a file but not a feature file (.npz); give an "
                "image folder or a feature file",
                param_hint=role,
            )
        self.loaded = load_feature_file(self.path) if self.is_file else None
        if not self.is_file:
            _require_metrics_extra(f"reading the image folder {self.path}")
            # an empty or unreadable folder fails now, before any model is built
            list_images(self.path)
        self.name = name or self._default_name()

    def _default_name(self) -> str:
        if self.loaded is not None and self.loaded.meta.get("source"):
            return Path(self.loaded.meta["source"]).name
        return self.path.stem if self.is_file else self.path.resolve().name

    def dataset_guess(self) -> str | None:
        folder = self.path
        if self.loaded is not None:
            source = self.loaded.meta.get("source")
            if not source:
                return None
            folder = Path(source)
        return folder.resolve().parent.name or None


@click.command(name="metrics")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--out",
    "-o",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for metrics.csv, metrics_wide.csv and feature files.",
)
@click.option(
    "--encoder",
    "-e",
    "encoders",
    multiple=True,
    help=f"Encoder registry name; repeat for several. [default: "
    f"{', '.join(DEFAULT_ENCODERS)}] Known: {', '.join(ENCODERS)}.",
)
@click.option(
    "--metric",
    "-m",
    "metrics",
    multiple=True,
    help=f"Metric name; repeat for several. [default: {', '.join(DEFAULT_METRICS)}, "
    f"plus IS for encoders with logits and C_T, FLS with --test] "
    f"Known: {', '.join(METRIC_NAMES)}.",
)
@click.option("--dataset", help="Dataset name. [default: the real folder's parent]")
@click.option(
    "--test",
    "test_input",
    help="Held-out real images (folder or feature file), for C_T and FLS.",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with columns path, class_name (paths relative to the CSV), for "
    "vendi_per_class.",
)
@click.option(
    "--weights",
    "weights",
    multiple=True,
    help="Encoder weights: PATH to a local file, 'hf-cache' for the local Hugging "
    "Face cache, or ENCODER=PATH / ENCODER=hf-cache with several encoders. "
    "Nothing is ever downloaded.",
)
@click.option(
    "--random-init",
    is_flag=True,
    help="Build encoders without weights from random weights (for tests; "
    "rows say random-init).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=EXTRACTION_DEFAULTS["batch_size"],
    show_default=True,
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=EXTRACTION_DEFAULTS["workers"],
    show_default=True,
    help="Image-decoding processes (0: decode in this process).",
)
@click.option(
    "--device",
    help=f"One of {DEVICES_TEXT}; checked on this machine before anything "
    "else. [default: cuda if available, else cpu]",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=EXTRACTION_DEFAULTS["cache_dir"],
    show_default=True,
    help="Feature cache folder.",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--shard",
    help="i/n: extract features of the i-th of n parts of every folder and write "
    "them as feature files to OUT/features (no metrics). Join them later with "
    "--merge-shards.",
)
@click.option(
    "--merge-shards",
    is_flag=True,
    help="INPUTS are shard feature files: merge each set's shards into one "
    "feature file in OUT/features, usable as an input of a later run.",
)
@click.option(
    "--save-features",
    is_flag=True,
    help="Also write every set's features to OUT/features.",
)
@click.option("--seed", type=int, default=SEED, show_default=True)
@click.option(
    "--too-few",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="When a set has fewer images than a metric needs: stop, or leave that "
    "metric out for that model with a warning.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_metric_setting_options
def metrics(
    inputs: tuple[str, ...],
    out_dir: Path,
    encoders: tuple[str, ...],
    metrics: tuple[str, ...],
    dataset: str | None,
    test_input: str | None,
    labels: Path | None,
    weights: tuple[str, ...],
    random_init: bool,
    batch_size: int,
    workers: int,
    device: str | None,
    cache_dir: Path,
    no_cache: bool,
    shard: str | None,
    merge_shards: bool,
    save_features: bool,
    seed: int,
    too_few: str,
    quiet: bool,
    **settings: Any,
) -> None:
    """Compute encoder-based metrics between real and generated images.

    INPUTS are the real images, then one or more generated sets, one model
    each. Each is an image folder (searched recursively) or a feature file
    (.npz) written by this command. A model is named after its folder unless
    given as NAME=PATH.

    Writes OUT/metrics.csv (tidy: dataset, model, encoder, metric, value,
    n_real, n_generated, weights) and OUT/metrics_wide.csv (one row per
    dataset, model and encoder). Features are cached, so a second run is
    quick.

    \b
    Examples:
      analysis metrics data/cifar10/real data/cifar10/ddpm -o out \\
          -e dinov2_vitl14 --weights ~/weights/dinov2_vitl14_pretrain.pth
      analysis metrics real/ gen/ -o out -e pixels -m FD -m KD
      # on several machines, then once the shards are in:
      analysis metrics real/ gen/ -o out --shard 0/4 ...
      analysis metrics --merge-shards -o out out/features/*shard*.npz
    """
    if device is not None:
        # before anything is read or built, whatever the inputs are
        try:
            check_device(device)
        except ValueError as error:
            raise click.UsageError(f"--device {error}") from None
    with output_folder_for_run(out_dir):
        try:
            if merge_shards:
                _merge(inputs, out_dir)
                return
            _run(
                inputs=inputs,
                out_dir=out_dir,
                encoders=encoders,
                metrics=metrics,
                dataset=dataset,
                test_input=test_input,
                labels=labels,
                weights=weights,
                random_init=random_init,
                extraction={"batch_size": batch_size, "workers": workers},
                device=device,
                cache_dir=None if no_cache else cache_dir,
                shard=shard,
                save_features=save_features,
                seed=seed,
                too_few=too_few,
                progress=not quiet,
                settings=settings,
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from error


def _merge(inputs: tuple[str, ...], out_dir: Path) -> None:
    groups: dict[tuple, list[FeatureSet]] = {}
    for text in inputs:
        shard = load_feature_file(text)
        key = (shard.meta.get("image_set"), shard.meta.get("encoder"))
        groups.setdefault(key, []).append(shard)
    for shards in groups.values():
        merged = merge_shards(shards)
        source = Path(merged.meta.get("source", "features")).name
        path = out_dir / "features" / f"{source}__{merged.encoder}{FEATURE_SUFFIX}"
        save_feature_file(path, merged)
        click.echo(f"merged {len(shards)} shards ({len(merged)} images) -> {path}")


def _parse_weights(
    weights: tuple[str, ...], encoders: list[str]
) -> dict[str, str | None]:
    """Map each encoder to its weights (None: none given)."""
    chosen: dict[str, str | None] = dict.fromkeys(encoders)
    networks = [e for e in encoders if ENCODERS[e].kind != "pixels"]
    for text in weights:
        name, sep, value = text.partition("=")
        if sep and name in ENCODERS:
            if name not in chosen:
                raise click.BadParameter(
                    f"{name} is not among the chosen encoders ({', '.join(encoders)})",
                    param_hint="--weights",
                )
            chosen[name] = value
        elif sep and not os.path.exists(text) and "/" not in name:
            raise click.BadParameter(
                f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}",
                param_hint="--weights",
            )
        elif len(networks) == 1:
            chosen[networks[0]] = text
        else:
            raise click.BadParameter(
                "with several encoders, give weights as ENCODER=PATH",
                param_hint="--weights",
            )
    return chosen


def _check_encoders(names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        try:
            get_encoder_spec(name)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--encoder") from None
        if name not in out:
            out.append(name)
    return out


def _run(
    *,
    inputs: tuple[str, ...],
    out_dir: Path,
    encoders: tuple[str, ...],
    metrics: tuple[str, ...],
    dataset: str | None,
    test_input: str | None,
    labels: Path | None,
    weights: tuple[str, ...],
    random_init: bool,
    extraction: dict[str, int],
    device: str | None,
    cache_dir: Path | None,
    shard: str | None,
    save_features: bool,
    seed: int,
    too_few: str,
    progress: bool,
    settings: dict[str, Any],
) -> None:
    from analysis.metrics.compute import check_metric_names

    shard_spec = _parse_shard(shard)
    real = _Input(inputs[0], "real")
    generated = [_Input(text, "generated") for text in inputs[1:]]
    test = _Input(test_input, "--test") if test_input else None
    if not generated and shard_spec is None:
        raise click.UsageError("give the real images and at least one generated set")
    names = [g.name for g in generated]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise click.UsageError(
            f"model name(s) {', '.join(duplicated)} given twice; name them "
            "with NAME=PATH"
        )
    if any(n.casefold() == "real" for n in names):
        raise click.UsageError("'real' is not a model name; use NAME=PATH")
    try:
        chosen_metrics = check_metric_names(metrics) if metrics else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--metric") from None

    encoder_names = _check_encoders(encoders or _encoders_from_files(real, generated))
    weights_by_encoder = _parse_weights(weights, encoder_names)
    dataset = dataset or real.dataset_guess()
    if not dataset:
        raise click.UsageError(
            "cannot tell the dataset from the inputs; give --dataset"
        )
    label_map = _read_labels(labels) if labels else None

    extractor = _Extractor(
        weights_by_encoder, random_init, seed, device, cache_dir, extraction, progress
    )
    frames = []
    for encoder in encoder_names:
        sets = {
            "real": extractor.features(real, encoder, shard_spec),
            **{g.name: extractor.features(g, encoder, shard_spec) for g in generated},
        }
        if test is not None:
            sets["test"] = extractor.features(test, encoder, shard_spec)
        if shard_spec is not None or save_features:
            _write_features(sets, encoder, out_dir, shard_spec)
        if shard_spec is not None:
            continue
        if label_map is not None:
            for g in generated:
                _attach_labels(sets[g.name], label_map)
        frames.append(
            _metrics_for_encoder(
                sets, generated, test, encoder, dataset, chosen_metrics,
                extractor, seed, too_few, progress, settings,
            )
        )  # fmt: skip

    if shard_spec is not None:
        click.echo(f"wrote shard {shard} features to {out_dir / 'features'}")
        return
    tidy_path, wide_path = write_metric_table(pd.concat(frames), out_dir)
    click.echo(f"wrote {tidy_path} and {wide_path}")


def _metrics_for_encoder(
    sets, generated, test, encoder, dataset, chosen_metrics,
    extractor, seed, too_few, progress, settings,
) -> pd.DataFrame:  # fmt: skip
    from analysis.metrics.compute import compute_metrics

    weights_label = _weights_label(sets, encoder, extractor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = compute_metrics(
            sets["real"],
            {g.name: sets[g.name] for g in generated},
            metrics=chosen_metrics,
            dataset=dataset,
            encoder=encoder,
            weights=weights_label,
            test=sets.get("test") if test is not None else None,
            seed=seed,
            on_too_few=too_few,
            progress=progress,
            **settings,
        )
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return frame


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if shard is None:
        return None
    try:
        return parse_shard(shard)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--shard") from None


def _encoders_from_files(real: _Input, generated: list[_Input]) -> tuple[str, ...]:
    """Encoders when none is named: the feature files' own, else the default."""
    loaded = [i.loaded for i in (real, *generated)]
    if all(f is not None for f in loaded):
        found = {f.encoder for f in loaded if f is not None}
        if None in found:
            raise click.UsageError(
                "feature files without metadata: name their encoder with --encoder"
            )
        return tuple(sorted(str(name) for name in found))
    return DEFAULT_ENCODERS


class _Extractor:
    """Builds each encoder once, when a folder needs it, and extracts features."""

    def __init__(self, weights, random_init, seed, device, cache_dir, extraction, bar):
        self.weights, self.random_init, self.seed = weights, random_init, seed
        self.device, self.extraction, self.progress = device, extraction, bar
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._built: dict[str, Any] = {}

    def encoder(self, name: str):
        if name not in self._built:
            from analysis.metrics.encoders import build_encoder, resolve_device

            self._built[name] = build_encoder(
                name,
                self.weights.get(name),
                random_init=self.random_init,
                seed=self.seed,
                device=resolve_device(self.device),
                digest_memo=self.cache_dir,
            )
        return self._built[name]

    def features(
        self, item: _Input, encoder: str, shard: tuple[int, int] | None
    ) -> FeatureSet:
        if item.loaded is not None:
            found = item.loaded.encoder
            if found is not None and found != encoder:
                raise click.UsageError(
                    f"{item.path} holds features of encoder {found}, not {encoder}"
                )
            return item.loaded
        from analysis.metrics.cache import FeatureCache
        from analysis.metrics.features import extract_folder

        cache = FeatureCache(self.cache_dir) if self.cache_dir else None
        result, hit = extract_folder(
            item.path,
            self.encoder(encoder),
            cache=cache,
            shard=shard or (0, 1),
            progress=self.progress,
            **self.extraction,
        )
        if hit and self.progress:
            click.echo(f"{encoder} {item.name}: features from the cache", err=True)
        return result


def _weights_label(sets: dict[str, FeatureSet], encoder: str, extractor) -> str:
    labels = {s.meta.get("weights", UNKNOWN_WEIGHTS) for s in sets.values()}
    if len(labels) > 1:
        raise click.UsageError(
            f"the {encoder} features of the inputs come from different weights "
            f"({', '.join(sorted(labels))}); compute them with the same weights"
        )
    return labels.pop()


def _write_features(sets, encoder, out_dir: Path, shard) -> None:
    suffix = f"__shard-{shard[0]}-of-{shard[1]}" if shard else ""
    for name, features in sets.items():
        path = out_dir / "features" / f"{name}__{encoder}{suffix}{FEATURE_SUFFIX}"
        save_feature_file(path, features)


def _read_labels(path: Path) -> dict[Path, str]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "class_name"} <= set(
            reader.fieldnames
        ):
            raise click.BadParameter(
                f"{path} needs the columns path and class_name; has "
                f"{reader.fieldnames}",
                param_hint="--labels",
            )
        return {
            (path.parent / row["path"]).resolve(): row["class_name"] or ""
            for row in reader
        }


def _attach_labels(features: FeatureSet, label_map: dict[Path, str]) -> None:
    source = features.meta.get("source")
    if not source:
        return
    root = Path(source)
    features.labels = [label_map.get((root / p).resolve(), "") for p in features.paths]
