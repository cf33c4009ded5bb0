"""Feature extraction: image folders to feature arrays, fast and reproducibly.

Images are decoded and preprocessed in worker processes (a torch
``DataLoader``), batched, and passed through the encoder under
``torch.inference_mode``; convolutional encoders run channels-last. The
device is CUDA when available, else the CPU. Results are cached on disk (see
:mod:`analysis.metrics.cache`), and a folder can be split into shards
(``shard=(i, n)``) whose feature files :func:`~analysis.metrics.featureset.
merge_shards` joins into exactly the features of an unsharded run.

Features do not depend on the batch size: each image is preprocessed alone,
the encoders have no cross-sample operations in eval mode, and on CUDA
deterministic algorithms are used and TF32 is switched off.
"""

from __future__ import annotations

import os

# cuBLAS needs this set before CUDA starts to be deterministic
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from analysis.metrics.cache import FeatureCache, cache_key, image_set_digest
from analysis.metrics.encoders import Encoder
from analysis.metrics.featureset import FORMAT_VERSION, FeatureSet

# list_images and parse_shard stay importable from here, where they began
from analysis.metrics.folders import (  # noqa: F401
    list_images,
    parse_shard,
    shard_paths,
)
from analysis.metrics.preprocess import load_image, preprocess
from analysis.metrics.registry import Preprocessing


class ImageFiles(Dataset):
    """Images of one folder, preprocessed for one encoder, one per item.

    An item is ``(tensor, error)``; a file that cannot be decoded gives a
    zero tensor and its error text, so the main process can name every bad
    file at once instead of failing inside a worker.
    """

    def __init__(self, root: str | Path, paths: Sequence[str], p: Preprocessing):
        self.root = Path(root)
        self.paths = list(paths)
        self.preprocessing = p

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        path = self.root / self.paths[i]
        try:
            return preprocess(load_image(path), self.preprocessing), ""
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            size = self.preprocessing.size
            return torch.zeros(3, size, size), f"{path}: {error}"


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic CUDA kernels and no TF32 inside the block (no-op on CPU)."""
    if device.type != "cuda":
        yield
        return
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
    )
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # TF32 rounds inputs to 10 bits, far above the 1e-5 batch-size tolerance
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        (
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32,
        ) = saved[:4]
        torch.use_deterministic_algorithms(saved[4])


def _device_of(encoder: Encoder) -> torch.device:
    tensor = next(iter(encoder.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def extract_features(
    encoder: Encoder,
    root: str | Path,
    paths: Sequence[str],
    *,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
    desc: str = "features",
) -> dict[str, np.ndarray]:
    """Run an encoder over image files.

    Parameters
    ----------
    encoder : Encoder
        A built encoder (its device is used).
    root : str or Path
        Folder the paths are relative to.
    paths : sequence of str
        Image files, in output order.
    batch_size : int
        Images per model call.
    workers : int
        Decoding processes; 0 decodes in this process.
    progress : bool
        Show a progress bar (images per second).
    desc : str
        Label of the progress bar.

    Returns
    -------
    dict
        ``features``: float32 array (images x feature_dim); for encoders with
        class logits also ``logits``: float32 (images x classes).

    Raises
    ------
    ValueError
        If ``paths`` is empty, the batch size or worker count is invalid, or
        images cannot be decoded (all of them are named, up to five).
    """
    if not paths:
        raise ValueError("no images to extract features from")
    if batch_size < 1 or workers < 0:
        raise ValueError(
            f"batch_size must be >= 1 and workers >= 0; got {batch_size}, {workers}"
        )
    device = _device_of(encoder)
    dataset = ImageFiles(root, paths, encoder.spec.preprocessing)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    memory = (
        torch.channels_last if encoder.spec.channels_last else torch.contiguous_format
    )

    outputs: dict[str, list[np.ndarray]] = {}
    bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress)
    with torch.inference_mode(), deterministic(device), bar:
        for batch, errors in loader:
            bad = [e for e in errors if e]
            if bad:
                raise ValueError(
                    f"cannot decode {len(bad)} image(s): " + "; ".join(bad[:5])
                )
            # N x 3 x H x W
            batch = batch.to(device, non_blocking=True).contiguous(memory_format=memory)
            for name, value in encoder(batch).items():
                outputs.setdefault(name, []).append(value.float().cpu().numpy())
            bar.update(batch.shape[0])
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def extract_folder(
    folder: str | Path,
    encoder: Encoder,
    *,
    cache: FeatureCache | None = None,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
) -> tuple[FeatureSet, bool]:
    """Features of a folder's images (or of one shard of them), via the cache.

    Parameters
    ----------
    folder : str or Path
        The image folder (searched recursively, in sorted path order).
    encoder : Encoder
        A built encoder.
    cache : FeatureCache, optional
        Where features are looked up first and stored after extraction.
    shard : tuple of int
        ``(i, n)``: handle only the i-th of n contiguous parts.
    batch_size, workers, progress
        As for :func:`extract_features`.

    Returns
    -------
    features : FeatureSet
        With metadata: encoder, weights, preprocessing, image-set digest
        (of the whole folder), image count, shard and source folder.
    hit : bool
        Whether the features came from the cache.
    """
    root = Path(folder)
    paths = list_images(root)
    part = shard_paths(paths, shard)
    if not part:
        raise ValueError(
            f"shard {shard[0]}/{shard[1]} of {root} holds no images "
            f"(the folder has {len(paths)}); use fewer shards"
        )

    digest = image_set_digest(root, paths)
    meta = {
        "encoder": encoder.spec.name,
        "weights": encoder.weights.label,
        "weights_key": encoder.weights.key,
        "preprocessing": encoder.spec.preprocessing.as_dict(),
        "image_set": digest,
        "n_images": len(paths),
        "shard": list(shard),
        "source": str(root),
    }
    key = cache_key(
        {
            "format": FORMAT_VERSION,
            "spec": encoder.spec.as_dict(),
            "weights": encoder.weights.key,
            "image_set": digest,
            "shard": list(shard),
        }
    )
    if cache is not None:
        cached = cache.get(key)
        if cached is not None and len(cached) == len(part):
            cached.meta["source"] = str(root)
            return cached, True

    arrays = extract_features(
        encoder,
        root,
        part,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        desc=f"{encoder.spec.name} {root.name}",
    )
    result = FeatureSet(arrays["features"], part, meta, arrays.get("logits"))
    if cache is not None:
        cache.put(key, result)
    return result, False
