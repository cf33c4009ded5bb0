"""Which device ``analysis metrics`` runs encoders on, checked before any work.

A device is ``cpu``, ``cuda`` or ``cuda:N``. CUDA is checked for here, so a
machine without a GPU refuses ``cuda`` at once with a clear message rather
than failing inside torch once a model is moved. torch is imported only to
look for CUDA, so a bad name is refused on the light install too.
"""

from __future__ import annotations

import re

DEVICES_TEXT = "cpu, cuda, cuda:N"
_DEVICE = re.compile(r"(cpu|cuda)(?::(\d+))?")


def check_device(device: str) -> str:
    """Return ``device`` if this machine can run encoders on it.

    Parameters
    ----------
    device : str
        ``cpu``, ``cuda`` or ``cuda:N`` (N counting from 0).

    Returns
    -------
    str
        The device, unchanged.

    Raises
    ------
    ValueError
        For any other name, for CUDA where no CUDA device is available
        (including without torch), and for an index past the last GPU.
    """
    match = _DEVICE.fullmatch(device)
    if match is None or (match[1] == "cpu" and match[2] is not None):
        raise ValueError(f"{device}: unknown device; allowed: {DEVICES_TEXT}")
    if match[1] == "cpu":
        return device

    fallback = "use cpu, or leave the device out to choose automatically"
    count = _cuda_device_count()
    if count == 0:
        raise ValueError(f"{device}: no CUDA device is available here; {fallback}")
    index = int(match[2] or 0)
    if index >= count:
        raise ValueError(
            f"{device}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}; {fallback}"
        )
    return device


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.device_count())
