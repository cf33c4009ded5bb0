"""Build encoders from the registry, with weights from local files only.

Weights come from a file (``weights=PATH``) or from the local Hugging Face
cache (``weights="hf-cache"``, read with the hub offline). Nothing is ever
downloaded: the hub is switched offline for the whole process when this
module is imported, and timm is only asked to load a named local file.
Without weights a model can only be built with ``random_init=True``; such an
encoder reports its weights as ``random-init``, and its features mean nothing
beyond testing the pipeline.
"""

from __future__ import annotations

import os

# before timm (and through it huggingface_hub) is imported: never go online
os.environ["HF_HUB_OFFLINE"] = "1"

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.models import load_state_dict

from analysis.metrics.cache import file_digest
from analysis.metrics.devices import check_device
from analysis.metrics.registry import EncoderSpec, get_encoder_spec
from analysis.metrics.table import NO_WEIGHTS, RANDOM_INIT

#: ``weights`` value that means "the encoder's repository in the local HF cache".
HF_CACHE = "hf-cache"

_HF_FILENAMES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
)


@dataclass(frozen=True)
class WeightsInfo:
    """Where an encoder's weights came from.

    ``label`` goes into the metric table's ``weights`` column; ``key`` goes
    into feature-cache keys (for random weights it also holds the seed and
    library versions, which decide the values).
    """

    label: str
    key: str
    path: Path | None = None


class Encoder(torch.nn.Module):
    """A registry encoder: images in, a dict of ``features`` (and ``logits``) out.

    Attributes
    ----------
    spec : EncoderSpec
        The registry entry.
    weights : WeightsInfo
        Where the weights came from.
    """

    def __init__(self, spec: EncoderSpec, model: torch.nn.Module, weights: WeightsInfo):
        super().__init__()
        self.spec = spec
        self.model = model
        self.weights = weights

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features (N x feature_dim) and, for classifiers, logits (N x classes)."""
        if self.spec.kind == "pixels":
            return {"features": x.flatten(1)}
        model: Any = self.model  # a timm model; its methods are not typed
        if self.spec.logits:
            features = model.forward_head(model.forward_features(x), pre_logits=True)
            return {
                "features": features,
                "logits": model.get_classifier()(features),
            }
        return {"features": model(x)}


def resolve_weights(
    spec: EncoderSpec,
    weights: str | Path | None,
    *,
    random_init: bool = False,
    seed: int = 0,
    digest_memo: Path | None = None,
) -> WeightsInfo:
    """Decide where an encoder's weights come from, without loading them.

    Parameters
    ----------
    spec : EncoderSpec
        The encoder.
    weights : str, Path or None
        A weights file, ``"hf-cache"`` for the local Hugging Face cache, or
        None.
    random_init : bool
        Allow random weights when ``weights`` is None.
    seed : int
        Seed of the random weights.
    digest_memo : Path, optional
        Folder where file digests are remembered between runs.

    Returns
    -------
    WeightsInfo

    Raises
    ------
    ValueError
        When no weights are given and ``random_init`` is False, when both are
        given, when the file is missing, or when the local cache has no copy.
    """
    if spec.kind == "pixels":
        return WeightsInfo(NO_WEIGHTS, NO_WEIGHTS)
    if weights is not None and random_init:
        raise ValueError(
            f"encoder {spec.name}: give either weights or random_init, not both"
        )
    if weights is None:
        if not random_init:
            raise ValueError(
                f"encoder {spec.name} needs weights: pass a local weights file "
                f"(--weights PATH; published weights: {spec.weights_source}), "
                f"or --weights {HF_CACHE} to read the local Hugging Face cache"
                + (f" ({spec.hf_hub_id})" if spec.hf_hub_id else "")
                + ", or --random-init for random weights (tests only). "
                "Nothing is downloaded."
            )
        versions = f"timm={timm.__version__}:torch={torch.__version__}"
        return WeightsInfo(RANDOM_INIT, f"{RANDOM_INIT}:seed={seed}:{versions}")

    if str(weights) == HF_CACHE:
        path, revision = _hf_cache_file(spec)
        digest = file_digest(path, memo_dir=digest_memo)
        label = f"hf:{spec.hf_hub_id}@{revision}#sha256:{digest}"
        return WeightsInfo(label, label, path)

    path = Path(weights).expanduser()
    if not path.is_file():
        raise ValueError(f"encoder {spec.name}: weights file {path} does not exist")
    label = f"sha256:{file_digest(path, memo_dir=digest_memo)}"
    return WeightsInfo(label, label, path)


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache, read from the environment at call time.

    ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else huggingface_hub's default.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hf_cache_file(spec: EncoderSpec) -> tuple[Path, str]:
    """The weights file of the encoder's repository in the local HF cache."""
    from huggingface_hub import try_to_load_from_cache

    if not spec.hf_hub_id:
        raise ValueError(
            f"encoder {spec.name} has no Hugging Face copy; pass --weights PATH "
            f"({spec.weights_source})"
        )
    cache = hf_cache_dir()
    for filename in _HF_FILENAMES:
        found = try_to_load_from_cache(spec.hf_hub_id, filename, cache_dir=cache)
        if isinstance(found, str):
            path = Path(found)
            # .../snapshots/<revision>/<filename>
            return path, path.parent.name
    raise ValueError(
        f"encoder {spec.name}: no local Hugging Face cache of {spec.hf_hub_id} "
        f"under {cache} (looked for {', '.join(_HF_FILENAMES)}); "
        "nothing is downloaded, so copy the weights there or pass --weights PATH"
    )


def build_encoder(
    name: str,
    weights: str | Path | None = None,
    *,
    random_init: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    digest_memo: Path | None = None,
) -> Encoder:
    """Build a registry encoder in eval mode on ``device``.

    Parameters
    ----------
    name : str
        Registry name (see :mod:`analysis.metrics.registry`).
    weights, random_init, seed, digest_memo
        As for :func:`resolve_weights`.
    device : str or torch.device
        Where the model lives.

    Returns
    -------
    Encoder

    Raises
    ------
    ValueError
        For an unknown encoder, missing weights, or a weights file that does
        not fit the architecture (the mismatching keys are named).
    """
    spec = get_encoder_spec(name)
    info = resolve_weights(
        spec, weights, random_init=random_init, seed=seed, digest_memo=digest_memo
    )
    if spec.kind == "pixels":
        model: torch.nn.Module = torch.nn.Identity()
    elif info.path is None:
        # random weights: seeded, so two builds give the same model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(
                spec.timm_name, pretrained=False, **spec.create_kwargs
            )
    elif spec.kind == "timm":
        model = _timm_from_file(spec, info.path)
    else:
        model = _state_dict_from_file(spec, info.path)

    if spec.name == "inception_v3_fid":
        _use_fid_inception_blocks(model)
    encoder = Encoder(spec, model, info).eval().to(device)
    if spec.channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder


def _timm_from_file(spec: EncoderSpec, path: Path) -> torch.nn.Module:
    # a file source outranks every other in timm; url and hub id are cleared too
    overlay = {"file": str(path), "url": "", "hf_hub_id": None}
    try:
        return timm.create_model(
            spec.timm_name,
            pretrained=True,
            pretrained_cfg_overlay=overlay,
            **spec.create_kwargs,
        )
    except RuntimeError as error:
        raise ValueError(
            f"weights file {path} does not fit encoder {spec.name} "
            f"({spec.timm_name}): {str(error).splitlines()[0]}"
        ) from error


def _state_dict_from_file(spec: EncoderSpec, path: Path) -> torch.nn.Module:
    model = timm.create_model(spec.timm_name, pretrained=False, **spec.create_kwargs)
    state = load_state_dict(str(path))
    drop = tuple(p for p in spec.key_filter.split(",") if p)
    state = {k: v for k, v in state.items() if not (drop and k.startswith(drop))}
    result = model.load_state_dict(state, strict=False)
    # batch-norm step counters are not weights; old checkpoints lack them
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights file {path} does not fit encoder {spec.name}: missing "
            f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model


# The FID Inception (TensorFlow graph inception-2015-12-05) differs from the
# standard Inception-V3 in its pooling: TF's average pools ignore the zero
# padding, and the last block's pool branch is a max pool. These forwards
# restate timm's block forwards with that pooling; the convolutions are timm's.


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _fid_block_a(self, x: torch.Tensor) -> torch.Tensor:
    b5 = self.branch5x5_2(self.branch5x5_1(x))
    b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    pool = self.branch_pool(_avg_pool_no_pad(x))
    return torch.cat([self.branch1x1(x), b5, b3, pool], 1)


def _fid_block_c(self, x: torch.Tensor) -> torch.Tensor:
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    b7d = self.branch7x7dbl_1(x)
    for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3):
        b7d = layer(b7d)
    b7d = self.branch7x7dbl_5(self.branch7x7dbl_4(b7d))
    pool = self.branch_pool(_avg_pool_no_pad(x))
    return torch.cat([self.branch1x1(x), b7, b7d, pool], 1)


def _fid_block_e(self, x: torch.Tensor, max_pool: bool) -> torch.Tensor:
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
    if max_pool:
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    else:
        pooled = _avg_pool_no_pad(x)
    return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(pooled)], 1)


def _fid_block_e1(self, x: torch.Tensor) -> torch.Tensor:
    return _fid_block_e(self, x, max_pool=False)


def _fid_block_e2(self, x: torch.Tensor) -> torch.Tensor:
    return _fid_block_e(self, x, max_pool=True)


def _use_fid_inception_blocks(model: torch.nn.Module) -> None:
    """Give a timm inception_v3 the FID network's pooling (see above)."""
    patches = {
        "Mixed_5b": _fid_block_a,
        "Mixed_5c": _fid_block_a,
        "Mixed_5d": _fid_block_a,
        "Mixed_6b": _fid_block_c,
        "Mixed_6c": _fid_block_c,
        "Mixed_6d": _fid_block_c,
        "Mixed_6e": _fid_block_c,
        "Mixed_7b": _fid_block_e1,
        "Mixed_7c": _fid_block_e2,
    }
    for block, forward in patches.items():
        module = getattr(model, block)
        module.forward = types.MethodType(forward, module)


def resolve_device(device: str | None = None) -> torch.device:
    """The device to run on: as given, else CUDA when available, else the CPU.

    A given device is checked by :func:`~analysis.metrics.devices.check_device`
    (ValueError when unknown or not on this machine).
    """
    if device:
        return torch.device(check_device(device))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
