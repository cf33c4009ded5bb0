"""The encoder registry: every feature extractor by a name that says what it is.

A name includes the architecture and the weights (``dinov2_vitl14`` is the
DINOv2 ViT-L/14 with Meta's LVD-142M weights), because features from the same
architecture with other weights are different features. Each entry also
records the published preprocessing (input size, resize filter, crop,
normalisation), the feature dimension, where its weights come from, and
honest notes where this build differs from the published one.

The preprocessing follows dgm-eval (Stein et al. 2023), the library behind the
published human-vs-metric leaderboard, unless noted. Encoders that timm
1.0.31 cannot build are listed in :data:`UNAVAILABLE` with the reason.

Nothing here imports torch; building a model is :mod:`analysis.metrics.encoders`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes an encoder input.

    Attributes
    ----------
    size : int
        Side of the square input, in pixels.
    resize : {"warp", "shorter"}
        ``warp`` resizes straight to ``size`` x ``size`` (aspect ratio not
        kept); ``shorter`` resizes the shorter side to ``resize_to`` and then
        centre-crops ``size`` x ``size``.
    resize_to : int
        Shorter-side length for ``resize="shorter"`` (equals ``size`` when no
        border is cropped).
    filter : {"bicubic", "bilinear"}
        Resampling filter.
    backend : {"pil", "pil-float", "torch"}
        ``pil``: Pillow on the 8-bit image (antialiased); ``pil-float``:
        Pillow on each channel as 32-bit float, no rounding to 8 bits
        (the "clean" resize of Parmar et al. 2022); ``torch``:
        ``torch.nn.functional.interpolate`` on the float tensor, not
        antialiased (as pytorch-fid and dgm-eval feed the FID Inception).
    mean, std : tuple of float
        Per-channel normalisation applied to values in [0, 1]:
        ``(x - mean) / std``.
    """

    size: int
    resize: Literal["warp", "shorter"]
    resize_to: int
    filter: Literal["bicubic", "bilinear"]
    backend: Literal["pil", "pil-float", "torch"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form, used in cache keys and feature-file metadata."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry.

    Attributes
    ----------
    name : str
        Registry name (architecture and weights).
    kind : {"timm", "timm-state-dict", "pixels"}
        ``timm``: built by ``timm.create_model(timm_name)``, weights loaded
        through timm's own checkpoint filter (which converts the original
        checkpoints, e.g. Meta's DINOv2 files); ``timm-state-dict``: a timm
        architecture whose published weights come from outside timm and are
        loaded here with :attr:`key_filter`; ``pixels``: no network.
    timm_name : str
        timm model name (``architecture.tag``); empty for ``pixels``.
    create_kwargs : dict
        Extra keyword arguments of ``timm.create_model``.
    feature_dim : int
        Length of one feature vector.
    preprocessing : Preprocessing
        The published input pipeline.
    logits : bool
        Whether the encoder also gives class logits (for ``IS``).
    channels_last : bool
        Whether the model runs in channels-last memory format (faster for
        convolutional networks).
    hf_hub_id : str
        Repository whose local Hugging Face cache holds the weights
        (``--weights hf-cache``); empty when the weights are not on the hub.
    weights_source : str
        The published weights file, for people fetching it themselves.
    key_filter : str
        For ``timm-state-dict``: which checkpoint keys to drop (a comma list
        of prefixes).
    notes : str
        Differences from the published build, in words.
    """

    name: str
    kind: Literal["timm", "timm-state-dict", "pixels"]
    timm_name: str
    feature_dim: int
    preprocessing: Preprocessing
    weights_source: str
    notes: str = ""
    create_kwargs: dict[str, Any] = field(default_factory=dict)
    logits: bool = False
    channels_last: bool = False
    hf_hub_id: str = ""
    key_filter: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form of what determines the features (for cache keys)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "timm_name": self.timm_name,
            "create_kwargs": dict(sorted(self.create_kwargs.items())),
            "feature_dim": self.feature_dim,
            "preprocessing": self.preprocessing.as_dict(),
        }


def _dinov2(size: str, dim: int) -> EncoderSpec:
    return EncoderSpec(
        name=f"dinov2_vit{size}14",
        kind="timm",
        timm_name={
            "s": "vit_small_patch14_dinov2.lvd142m",
            "b": "vit_base_patch14_dinov2.lvd142m",
            "l": "vit_large_patch14_dinov2.lvd142m",
            "g": "vit_giant_patch14_dinov2.lvd142m",
        }[size],
        create_kwargs={"img_size": 224, "num_classes": 0},
        feature_dim=dim,
        preprocessing=Preprocessing(
            224, "warp", 224, "bicubic", "pil", IMAGENET_MEAN, IMAGENET_STD
        ),
        hf_hub_id=f"timm/vit_{_DINO_SIZES[size]}_patch14_dinov2.lvd142m",
        weights_source=(
            f"dinov2_vit{size}14_pretrain.pth (Meta, torch.hub "
            "facebookresearch/dinov2) or the timm hub copy"
        ),
        notes=(
            "Features: the class token after the final norm, as torch.hub's "
            "DINOv2 returns it. Input 224 x 224 as in dgm-eval (DINOv2 was "
            "trained at 518); timm resamples the position embedding once when "
            "loading, where the torch.hub model interpolates it at every "
            "forward pass, so features can differ in the last digits."
        ),
    )


_DINO_SIZES = {"s": "small", "b": "base", "l": "large", "g": "giant"}

_SPECS: tuple[EncoderSpec, ...] = (
    EncoderSpec(
        name="inception_v3_fid",
        kind="timm-state-dict",
        timm_name="inception_v3",
        create_kwargs={"num_classes": 1008},
        feature_dim=2048,
        preprocessing=Preprocessing(299, "warp", 299, "bilinear", "torch", HALF, HALF),
        logits=True,
        channels_last=True,
        weights_source=(
            "pt_inception-2015-12-05-6726825d.pth (pytorch-fid release; the "
            "TensorFlow FID graph inception-2015-12-05 ported to PyTorch)"
        ),
        notes=(
            "timm's inception_v3 architecture with the FID network's "
            "differences applied here: 1008 classes, average pools that "
            "exclude padding in Mixed_5b-6e and 7b, and a max pool in the "
            "pool branch of Mixed_7c. With the pt_inception weights this is "
            "the network of pytorch-fid and dgm-eval. The resize is a "
            "non-antialiased bilinear torch interpolate to 299, as there; the "
            "original TensorFlow code resized with TF's bilinear kernel, so "
            "values differ slightly from TF-computed FIDs. Features: the 2048 "
            "pool outputs; logits: the 1008 fc outputs (for IS)."
        ),
    ),
    EncoderSpec(
        name="inception_v3_tf_in1k",
        kind="timm",
        timm_name="inception_v3.tf_in1k",
        feature_dim=2048,
        preprocessing=Preprocessing(299, "shorter", 341, "bicubic", "pil", HALF, HALF),
        logits=True,
        channels_last=True,
        hf_hub_id="timm/inception_v3.tf_in1k",
        weights_source="timm inception_v3.tf_in1k (TF-slim 2016-08-28 port)",
        notes=(
            "NOT the FID network: timm's closest build, a standard Inception-V3 "
            "with TF-slim ImageNet weights (1000 classes). Its FID values are "
            "not comparable with published FIDs. Preprocessing is timm's "
            "(crop fraction 0.875)."
        ),
    ),
    _dinov2("s", 384),
    _dinov2("b", 768),
    _dinov2("l", 1024),
    _dinov2("g", 1536),
    EncoderSpec(
        name="clip_vitl14",
        kind="timm",
        timm_name="vit_large_patch14_clip_quickgelu_224.openai",
        create_kwargs={"num_classes": 0},
        feature_dim=1024,
        preprocessing=Preprocessing(
            224, "shorter", 224, "bicubic", "pil", CLIP_MEAN, CLIP_STD
        ),
        hf_hub_id="timm/vit_large_patch14_clip_quickgelu_224.openai",
        weights_source="OpenAI CLIP ViT-L/14 (timm hub copy)",
        notes=(
            "OpenAI CLIP ViT-L/14 image tower with QuickGELU, as OpenAI "
            "trained it (timm's non-quickgelu 'vit_large_patch14_clip_224."
            "openai' would change the activations). Features: the class "
            "token after ln_post, before the projection (1024-d). dgm-eval "
            "uses other CLIP weights; see clip_vitl14_datacompxl."
        ),
    ),
    EncoderSpec(
        name="clip_vitl14_datacompxl",
        kind="timm",
        timm_name="vit_large_patch14_clip_224.datacompxl",
        create_kwargs={"num_classes": 0},
        feature_dim=1024,
        preprocessing=Preprocessing(
            224, "warp", 224, "bicubic", "pil", CLIP_MEAN, CLIP_STD
        ),
        hf_hub_id="timm/vit_large_patch14_clip_224.datacompxl",
        weights_source="open_clip ViT-L-14 datacomp_xl_s13b_b90k (timm hub copy)",
        notes=(
            "The CLIP encoder of dgm-eval (open_clip ViT-L-14, DataComp-XL "
            "weights); features before the projection, input warped to 224."
        ),
    ),
    EncoderSpec(
        name="convnext_large_in22k",
        kind="timm",
        timm_name="convnext_large.fb_in22k",
        create_kwargs={"num_classes": 0},
        feature_dim=1536,
        preprocessing=Preprocessing(
            224, "shorter", 256, "bicubic", "pil", IMAGENET_MEAN, IMAGENET_STD
        ),
        channels_last=True,
        hf_hub_id="timm/convnext_large.fb_in22k",
        weights_source="convnext_large_22k_224.pth (Meta) or the timm hub copy",
        notes=(
            "dgm-eval's ConvNeXt: ImageNet-22k ConvNeXt-L; features after the "
            "head's global pool and norm (1536-d)."
        ),
    ),
    EncoderSpec(
        name="mae_vitl16",
        kind="timm",
        timm_name="vit_large_patch16_224.mae",
        create_kwargs={"num_classes": 0},
        feature_dim=1024,
        preprocessing=Preprocessing(
            224, "shorter", 224, "bicubic", "pil", IMAGENET_MEAN, IMAGENET_STD
        ),
        hf_hub_id="timm/vit_large_patch16_224.mae",
        weights_source="mae_pretrain_vit_large.pth (Meta) or the timm hub copy",
        notes=(
            "dgm-eval's MAE: the pre-trained (not fine-tuned) ViT-L/16; "
            "features are the class token after the final norm. dgm-eval "
            "resizes the shorter side to 224 without a crop, which is the "
            "same for square images; here non-square images are centre-cropped."
        ),
    ),
    EncoderSpec(
        name="swav_resnet50",
        kind="timm-state-dict",
        timm_name="resnet50",
        create_kwargs={"num_classes": 0},
        feature_dim=2048,
        preprocessing=Preprocessing(
            224, "shorter", 224, "bilinear", "pil", IMAGENET_MEAN, IMAGENET_STD
        ),
        channels_last=True,
        key_filter="projection_head,prototypes",
        weights_source="swav_800ep_pretrain.pth.tar (Meta, facebookresearch/swav)",
        notes=(
            "SwAV ResNet-50 (800 epochs). SwAV's network pads the input by 1 "
            "and its first convolution by 2, the same as the standard padding "
            "of 3, so timm's resnet50 holds its weights exactly; the projection "
            "head and prototypes are dropped. Features: global average pool "
            "(2048-d). Non-square images are centre-cropped (dgm-eval does not "
            "crop)."
        ),
    ),
    EncoderSpec(
        name="pixels",
        kind="pixels",
        timm_name="",
        feature_dim=3 * 32 * 32,
        preprocessing=Preprocessing(
            32, "warp", 32, "bicubic", "pil-float", UNIT_MEAN, UNIT_STD
        ),
        weights_source="none (no network)",
        notes=(
            "Raw pixels: the image resized to 32 x 32 (bicubic on float "
            "channels, as dgm-eval's pixel encoder), values in [0, 1], "
            "flattened channel-first to 3072 values."
        ),
    ),
)

#: Registry name -> entry.
ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in _SPECS}

#: Encoders named in the design that timm 1.0.31 cannot build, and why.
UNAVAILABLE: dict[str, str] = {
    "data2vec": (
        "dgm-eval uses Hugging Face transformers' Data2VecVisionModel "
        "(facebook/data2vec-vision-large, pooled output). timm 1.0.31 has no "
        "data2vec model or weights; its BEiT architecture is related but the "
        "checkpoint's key names and pooling differ, and the transformers "
        "package is not a dependency of this project."
    ),
    "simclr": (
        "dgm-eval uses SimCLRv2 r50_1x_sk1, a ResNet-50 with SimCLR's own "
        "selective-kernel blocks, from a TensorFlow checkpoint converted by a "
        "third-party script. timm's skresnet50 is a different selective-kernel "
        "design, so those weights do not load into any timm model."
    ),
}


def encoder_names() -> list[str]:
    """Registry names, in registry order."""
    return list(ENCODERS)


def get_encoder_spec(name: str) -> EncoderSpec:
    """Return the registry entry for ``name``.

    Raises
    ------
    ValueError
        For an unknown or unavailable name; the message lists the known
        names, or says why the encoder is not available.
    """
    if name in ENCODERS:
        return ENCODERS[name]
    if name in UNAVAILABLE:
        raise ValueError(f"encoder {name!r} is not available: {UNAVAILABLE[name]}")
    raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
