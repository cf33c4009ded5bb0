"""``analysis`` on the light install (``pip install -e .``): no torch, no timm.

Each test runs the command in a fresh interpreter whose import system
refuses torch, timm and torchvision, as on a machine without the metrics
extra, so these tests need no torch and run on every install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from analysis.metrics.featureset import FeatureSet, save_feature_file
from analysis.metrics.table import read_metric_table

# A finder placed first on sys.meta_path answers "no such module" for the
# metrics extra; setting sys.modules["torch"] = None instead breaks SciPy,
# which looks torch up in sys.modules.
_WITHOUT_TORCH = """
import sys

class _NoMetricsExtra:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "timm", "torchvision"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoMetricsExtra())
"""

_ANALYSIS = (
    _WITHOUT_TORCH
    + """
from analysis.cli import main
main(sys.argv[1:], prog_name="analysis")
"""
)


def analysis(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", _ANALYSIS, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def make_folder(folder: Path, count: int = 8) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def test_image_folders_name_the_extra_to_install(tmp_path) -> None:
    real = make_folder(tmp_path / "toy" / "real")
    gen = make_folder(tmp_path / "toy" / "gen")

    result = analysis("metrics", real, gen, "-o", tmp_path / "out", "-e", "pixels")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: reading the image folder {real} needs the metrics extra (torch, "
        "timm), and torch is not installed; install it with pip install -e "
        "'.[metrics]' (or make install-dev), or give feature files (.npz) "
        "instead\n"
    )
    assert not (tmp_path / "out").exists()


def test_feature_files_work_without_torch(tmp_path) -> None:
    rng = np.random.default_rng(1)
    real = save_feature_file(
        tmp_path / "real.npz", FeatureSet(rng.normal(size=(30, 4)), [])
    )
    out = tmp_path / "out"

    result = analysis(
        "metrics", real, f"same={real}", "-o", out, "-e", "pixels",
        "--dataset", "toy", "-m", "FD", "--quiet",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    tidy = read_metric_table(out / "metrics.csv")
    assert list(tidy.model) == ["same"]
    assert abs(tidy.loc[0, "value"]) < 1e-9


def test_help_works_without_torch() -> None:
    for args in (["--help"], ["metrics", "--help"], ["fit", "--help"]):
        result = analysis(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Usage: analysis"), result.stdout


def test_importing_the_commands_does_not_import_torch() -> None:
    code = """
import importlib, sys
from analysis.cli import COMMANDS
for module, _, _ in COMMANDS.values():
    importlib.import_module(module)
loaded = sorted(
    m for m in ("torch", "timm", "torchvision") if m in sys.modules
)
print(",".join(loaded) or "none")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_device_is_checked_without_torch(tmp_path) -> None:
    real = save_feature_file(tmp_path / "real.npz", FeatureSet(np.ones((5, 2)), []))
    base = ["metrics", real, f"m={real}", "-o", tmp_path / "out", "--dataset", "d"]

    cuda = analysis(*base, "--device", "cuda")
    tpu = analysis(*base, "--device", "tpu")

    assert (cuda.returncode, tpu.returncode) == (2, 2)
    assert cuda.stderr.splitlines()[-1] == (
        "Error: --device cuda: no CUDA device is available here; use cpu, or "
        "leave the device out to choose automatically"
    )
    assert tpu.stderr.splitlines()[-1] == (
        "Error: --device tpu: unknown device; allowed: cpu, cuda, cuda:N"
    )
    assert not (tmp_path / "out").exists()
