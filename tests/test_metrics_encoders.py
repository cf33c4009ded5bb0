"""Encoders, preprocessing, feature extraction, the feature cache and shards.

Models here are randomly initialised (``random_init=True``): no weights can be
downloaded, and these tests check the pipeline, not what the features mean.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from analysis.metrics import registry  # noqa: E402
from analysis.metrics.cache import FeatureCache  # noqa: E402
from analysis.metrics.encoders import Encoder, WeightsInfo, build_encoder  # noqa: E402
from analysis.metrics.features import (  # noqa: E402
    extract_features,
    extract_folder,
    list_images,
    parse_shard,
    shard_paths,
)
from analysis.metrics.featureset import (  # noqa: E402
    load_feature_file,
    merge_shards,
    save_feature_file,
)
from analysis.metrics.preprocess import preprocess  # noqa: E402

pytestmark = pytest.mark.torch


def make_images(folder: Path, count: int, seed: int = 0) -> Path:
    """PNG images of mixed sizes and modes, one in a subfolder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = (40, 30) if i % 3 else (32, 32)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i % 4 == 1:
            image = image.convert("L")  # grey images are turned into RGB
        target = folder / ("nested" if i == 0 else "") / f"img_{i:03d}.png"
        target.parent.mkdir(exist_ok=True)
        image.save(target)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("images") / "set", 34)


@pytest.fixture(scope="module")
def few_images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("few") / "set", 7)


@pytest.fixture(scope="module")
def vits14():
    return build_encoder("dinov2_vits14", random_init=True, seed=3)


@pytest.fixture(scope="module")
def shallow_vit():
    """The dinov2_vits14 entry (preprocessing and all) with 2 of its 12 blocks.

    The pipeline tests need many forward passes; a 2-block ViT runs the same
    operations six times faster. tests/test_metrics_realism_bench.py repeats
    the batch-size check with the full network.
    """
    spec = registry.get_encoder_spec("dinov2_vits14")
    torch.manual_seed(0)
    model = timm.create_model(spec.timm_name, depth=2, **spec.create_kwargs)
    return Encoder(spec, model.eval(), WeightsInfo("random-init", "test:depth=2"))


@pytest.fixture(scope="module")
def shallow_cnn():
    """The swav_resnet50 entry (channels-last) as a narrow one-block-per-stage
    ResNet: the same kinds of layers at a sixtieth of the cost."""
    from timm.models.resnet import BasicBlock, ResNet

    spec = registry.get_encoder_spec("swav_resnet50")
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], channels=(16, 32, 64, 128), num_classes=0)
    model = model.eval().to(memory_format=torch.channels_last)
    return Encoder(spec, model, WeightsInfo("random-init", "test:narrow-resnet"))


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_registry_names_and_preprocessing() -> None:
    names = registry.encoder_names()
    for name in (
        "inception_v3_fid",
        "dinov2_vits14",
        "dinov2_vitb14",
        "dinov2_vitl14",
        "dinov2_vitg14",
        "clip_vitl14",
        "convnext_large_in22k",
        "mae_vitl16",
        "swav_resnet50",
        "pixels",
    ):
        assert name in names
    spec = registry.get_encoder_spec("dinov2_vitl14")
    assert (spec.feature_dim, spec.preprocessing.size) == (1024, 224)
    assert spec.preprocessing.mean == registry.IMAGENET_MEAN
    with pytest.raises(ValueError, match="known: inception_v3_fid, "):
        registry.get_encoder_spec("inception")
    with pytest.raises(ValueError, match=r"not available: .*transformers"):
        registry.get_encoder_spec("data2vec")


def test_no_weights_is_a_clear_error_without_network(no_network) -> None:
    with pytest.raises(ValueError, match=r"needs weights.*--random-init"):
        build_encoder("dinov2_vits14")
    with pytest.raises(ValueError, match="no local Hugging Face cache"):
        build_encoder("dinov2_vits14", "hf-cache")
    with pytest.raises(ValueError, match="does not exist"):
        build_encoder("dinov2_vits14", "/no/such/weights.pth")


def test_random_init_is_seeded(vits14) -> None:
    again = build_encoder("dinov2_vits14", random_init=True, seed=3)
    other = build_encoder("dinov2_vits14", random_init=True, seed=4)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        a, b, c = (e(x)["features"] for e in (vits14, again, other))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert vits14.weights.label == "random-init"
    assert "seed=3" in vits14.weights.key


def test_weights_load_from_a_local_file(tmp_path, vits14, no_network) -> None:
    path = tmp_path / "vits14.pth"
    torch.save(vits14.model.state_dict(), path)
    loaded = build_encoder("dinov2_vits14", path)
    assert loaded.weights.label.startswith("sha256:")
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(loaded(x)["features"], vits14(x)["features"])


def test_weights_load_from_a_local_hf_cache(
    tmp_path, monkeypatch, vits14, no_network
) -> None:
    from safetensors.torch import save_file

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    state = {k: v.contiguous() for k, v in vits14.model.state_dict().items()}
    save_file(state, snapshot / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    loaded = build_encoder("dinov2_vits14", "hf-cache")
    assert loaded.weights.label.startswith(
        f"hf:timm/vit_small_patch14_dinov2.lvd142m@{revision}#sha256:"
    )
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(loaded(x)["features"], vits14(x)["features"])


def test_swav_checkpoint_keys_are_filtered(tmp_path) -> None:
    swav = build_encoder("swav_resnet50", random_init=True, seed=1)
    # SwAV's checkpoint: DataParallel prefixes, a projection head, prototypes
    state = {f"module.{k}": v for k, v in swav.model.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 2048)
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)
    loaded = build_encoder("swav_resnet50", path)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x)["features"], swav(x)["features"])

    state["module.extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not fit encoder swav_resnet50"):
        build_encoder("swav_resnet50", path)


def test_fid_inception_takes_torchvision_named_weights(tmp_path) -> None:
    torchvision = pytest.importorskip("torchvision")
    # pytorch-fid's pt_inception file uses torchvision's key names
    reference = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, num_classes=1008
    )
    state = {k: v for k, v in reference.state_dict().items() if "num_batches" not in k}
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    fid = build_encoder("inception_v3_fid", path)
    # a small input keeps the test quick; the network is fully convolutional
    out = fid(torch.randn(1, 3, 139, 139))
    assert out["features"].shape == (1, 2048) and out["logits"].shape == (1, 1008)

    # the FID blocks pool differently from timm's standard ones
    block = fid.model.Mixed_7c
    x = torch.randn(1, 2048, 8, 8)
    standard = type(block).forward(block, x)
    assert not torch.allclose(block(x), standard)


def test_preprocessing_sizes_and_normalisation() -> None:
    image = Image.fromarray(np.full((30, 50, 3), 255, dtype=np.uint8))
    for spec in registry.ENCODERS.values():
        x = preprocess(image, spec.preprocessing)
        size = spec.preprocessing.size
        assert x.shape == (3, size, size)
        expected = (1 - np.array(spec.preprocessing.mean)) / spec.preprocessing.std
        assert x.mean(dim=(1, 2)).numpy() == pytest.approx(expected, abs=1e-4)


def _reference_transform(p: registry.Preprocessing):
    """The encoder's preprocessing written with torchvision's transforms.

    PIL backends follow the torchvision pipelines the encoders were trained
    with (Resize on the PIL image, CenterCrop, ToTensor, Normalize);
    ``pil-float`` resizes each channel as float (clean-fid's resize, Parmar
    et al. 2022); ``torch`` is pytorch-fid's bilinear interpolation of the
    [0, 1] tensor without antialiasing.
    """
    from torchvision import transforms as T

    filters = {"bicubic": T.InterpolationMode.BICUBIC}
    filters["bilinear"] = T.InterpolationMode.BILINEAR
    size = (p.size, p.size) if p.resize == "warp" else p.resize_to
    tail = [T.CenterCrop(p.size), T.Normalize(p.mean, p.std)]
    if p.backend == "pil":
        return T.Compose([T.Resize(size, filters[p.filter]), T.ToTensor(), *tail])

    def per_channel_float(image):
        planes = []
        for c in np.asarray(image, dtype=np.float32).transpose(2, 0, 1):
            plane = Image.fromarray(c, mode="F")
            target = (p.size, p.size) if p.resize == "warp" else None
            planes.append(np.asarray(plane.resize(target, Image.Resampling.BICUBIC)))
        return torch.from_numpy(np.clip(np.stack(planes), 0, 255) / 255.0).float()

    def interpolate(image):
        x = T.functional.to_tensor(image)[None]
        x = torch.nn.functional.interpolate(
            x, size=(p.size, p.size), mode="bilinear", align_corners=False
        )
        return x[0]

    first = per_channel_float if p.backend == "pil-float" else interpolate
    return T.Compose([first, *tail])


@pytest.mark.parametrize("name", sorted(registry.ENCODERS))
def test_preprocessing_equals_the_published_transforms(name) -> None:
    spec = registry.ENCODERS[name].preprocessing
    if spec.backend != "pil":
        # Only warped inputs use these backends; a crop would need its size.
        assert spec.resize == "warp"
    rng = np.random.default_rng(3)
    # A landscape and a portrait photo-sized image, neither square.
    for shape in ((240, 320, 3), (333, 250, 3)):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        ours = preprocess(image, spec)
        reference = _reference_transform(spec)(image)
        assert ours.shape == reference.shape == (3, spec.size, spec.size)
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-5)


@pytest.mark.parametrize("encoder", ["shallow_vit", "shallow_cnn"])
def test_features_do_not_depend_on_batch_size_or_workers(images, encoder, request):
    model = request.getfixturevalue(encoder)
    paths = list_images(images)[:32]
    one = extract_features(model, images, paths, batch_size=1, workers=0)
    many = extract_features(model, images, paths, batch_size=32, workers=2)
    assert one["features"].shape == (32, model.model.num_features)
    np.testing.assert_allclose(one["features"], many["features"], rtol=0, atol=1e-5)


def test_pixels_are_the_resized_image(images) -> None:
    pixels = build_encoder("pixels")
    paths = list_images(images)
    out = extract_features(pixels, images, paths[:3], batch_size=2, workers=0)
    square = np.asarray(Image.open(images / paths[2]).convert("RGB"))  # 32 x 32
    expected = square.transpose(2, 0, 1).reshape(-1) / 255.0
    assert pixels.weights.label == "none"
    np.testing.assert_allclose(out["features"][2], expected, atol=1e-6)


def test_cache_hits_and_misses(few_images, tmp_path, shallow_vit) -> None:
    vit = shallow_vit
    cache = FeatureCache(tmp_path / "cache")
    first, hit1 = extract_folder(few_images, vit, cache=cache, workers=0)
    second, hit2 = extract_folder(few_images, vit, cache=cache, workers=0)
    assert (hit1, hit2) == (False, True)
    np.testing.assert_array_equal(first.features, second.features)
    assert first.meta["weights"] == "random-init"

    # other weights (another key): a miss
    other = Encoder(vit.spec, vit.model, WeightsInfo("random-init", "other"))
    _, hit = extract_folder(few_images, other, cache=cache, workers=0, progress=False)
    assert not hit
    # other preprocessing: a miss
    spec = dataclasses.replace(
        vit.spec,
        preprocessing=dataclasses.replace(vit.spec.preprocessing, filter="bilinear"),
    )
    changed = Encoder(spec, vit.model, vit.weights)
    _, hit = extract_folder(few_images, changed, cache=cache, workers=0)
    assert not hit
    # another shard of the same folder: a miss
    _, hit = extract_folder(few_images, vit, cache=cache, shard=(0, 2), workers=0)
    assert not hit
    # an edited image: a miss
    edited = make_images(tmp_path / "edited", 7)
    Image.new("RGB", (32, 32), "red").save(edited / "img_005.png")
    _, hit = extract_folder(edited, vit, cache=cache, workers=0)
    assert not hit


def test_shards_merge_into_the_unsharded_features(
    few_images, tmp_path, shallow_vit
) -> None:
    whole, _ = extract_folder(few_images, shallow_vit, workers=0, batch_size=16)
    files = []
    for i in range(3):
        part, _ = extract_folder(few_images, shallow_vit, shard=(i, 3), workers=0)
        files.append(save_feature_file(tmp_path / f"shard{i}.npz", part))
    merged = merge_shards([load_feature_file(f) for f in reversed(files)])
    assert merged.paths == whole.paths
    np.testing.assert_allclose(merged.features, whole.features, rtol=0, atol=1e-5)

    with pytest.raises(ValueError, match="exactly once"):
        merge_shards([load_feature_file(f) for f in files[:2]])


def test_shard_arithmetic() -> None:
    paths = [str(i) for i in range(10)]
    parts = [shard_paths(paths, (i, 3)) for i in range(3)]
    assert [len(p) for p in parts] == [4, 3, 3]
    assert [p for part in parts for p in part] == paths
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1-3", "x/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_bad_folders_are_named(tmp_path, shallow_vit) -> None:
    with pytest.raises(ValueError, match="holds no images"):
        list_images(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        list_images(tmp_path / "missing")
    broken = make_images(tmp_path / "broken", 3)
    (broken / "img_002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot decode 1 image.*img_002\.png"):
        extract_folder(broken, shallow_vit, workers=0)
