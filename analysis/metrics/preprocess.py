"""Turn an image file into an encoder input tensor, as the registry prescribes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from analysis.metrics.registry import Preprocessing

_PIL_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file as 8-bit RGB (grey and palette images converted)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def _target_size(width: int, height: int, p: Preprocessing) -> tuple[int, int]:
    if p.resize == "warp":
        return p.size, p.size
    # shorter side to resize_to, the other scaled alike (torchvision's rule)
    if width <= height:
        return p.resize_to, int(p.resize_to * height / width)
    return int(p.resize_to * width / height), p.resize_to


def _centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return x[..., top : top + size, left : left + size]


def _resize_pil(image: Image.Image, p: Preprocessing) -> torch.Tensor:
    size = _target_size(*image.size, p)
    if image.size != size:
        image = image.resize(size, _PIL_FILTERS[p.filter])
    # H x W x 3 uint8 -> 3 x H x W in [0, 1]
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(
        2, 0, 1
    )


def _resize_pil_float(image: Image.Image, p: Preprocessing) -> torch.Tensor:
    size = _target_size(*image.size, p)
    rgb = np.asarray(image, dtype=np.float32)
    channels = []
    for c in range(3):
        plane = Image.fromarray(rgb[:, :, c], mode="F")
        if plane.size != size:
            plane = plane.resize(size, _PIL_FILTERS[p.filter])
        channels.append(np.clip(np.asarray(plane), 0.0, 255.0))
    return torch.from_numpy(np.stack(channels) / 255.0)


def _resize_torch(image: Image.Image, p: Preprocessing) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    size = _target_size(*image.size, p)
    if (x.shape[2], x.shape[1]) != size:
        # 1 x 3 x H x W, no antialiasing (pytorch-fid's choice)
        x = F.interpolate(
            x[None], size=(size[1], size[0]), mode=p.filter, align_corners=False
        )[0]
    return x


_BACKENDS = {"pil": _resize_pil, "pil-float": _resize_pil_float, "torch": _resize_torch}


def preprocess(image: Image.Image, p: Preprocessing) -> torch.Tensor:
    """Resize, crop and normalise one RGB image.

    Parameters
    ----------
    image : PIL.Image.Image
        An RGB image.
    p : Preprocessing
        The encoder's preprocessing (see :class:`~analysis.metrics.registry.
        Preprocessing`).

    Returns
    -------
    torch.Tensor
        Float32 tensor of shape 3 x size x size, ``(x - mean) / std`` with
        ``x`` in [0, 1].
    """
    x = _BACKENDS[p.backend](image, p)
    x = _centre_crop(x, p.size)
    mean = torch.tensor(p.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(p.std, dtype=torch.float32)[:, None, None]
    return ((x - mean) / std).contiguous()
