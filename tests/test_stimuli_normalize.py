"""Stimulus normalisation: every format and colour mode leaves as the same plain PNG."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from stimuli.normalize import (
    BACKGROUND,
    PNG_COMPRESS_LEVEL,
    StimulusImportError,
    check_fit_options,
    convert_to_rgb,
    encode_png,
    metadata_kinds,
    normalize_image,
    sniff_format,
)

# --- an independent PNG reader -------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[str, bytes]]:
    """Split a PNG file into (type, payload) chunks, checking every CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        chunks.append((kind.decode("ascii"), payload))
        offset += 12 + length
    return chunks


def assert_plain_png(data: bytes, width: int, height: int) -> None:
    """The output contract: IHDR, IDAT..., IEND; 8-bit RGB; zlib level 1."""
    chunks = png_chunks(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == "IHDR" and kinds[-1] == "IEND"
    assert set(kinds[1:-1]) == {"IDAT"}, kinds
    ihdr = struct.unpack(">IIBBBBB", chunks[0][1])
    # width, height, bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
    assert ihdr == (width, height, 8, 2, 0, 0, 0)
    stream = b"".join(payload for kind, payload in chunks if kind == "IDAT")
    raw = zlib.decompress(stream)
    assert len(raw) == height * (1 + 3 * width)
    # The same deflate settings reproduce the stream bit for bit.
    deflate = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9)
    assert deflate.compress(raw) + deflate.flush() == stream


def pixels_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB"
        return np.asarray(image).copy()


# --- ICC profiles built here (none ship with the test machine) -----------------

# sRGB primaries adapted to D50 (Bradford), as in the ICC's sRGB profiles.
SRGB_TO_XYZ_D50 = np.array(
    [[0.4361, 0.3851, 0.1431], [0.2225, 0.7169, 0.0606], [0.0139, 0.0971, 0.7141]]
)
D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">IIHB", 0, 0, 0, 0)
        + b"\0" * 67
    )


def _icc(device_class: bytes, space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """Assemble an ICC v2.1 profile (header, tag table, tag data)."""
    table = struct.pack(">I", len(tags))
    body = b""
    start = 128 + 4 + 12 * len(tags)
    for signature, data in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    body += b"\0" * (-len(body) % 4)
    header = (
        struct.pack(">I", 128 + len(table) + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + device_class
        + space
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + table + body


def cmyk_profile(name: str, corner_rgb) -> bytes:
    """A CMYK profile whose A2B0 lut maps each CMYK corner to linear sRGB."""
    clut = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    xyz = SRGB_TO_XYZ_D50 @ np.array(corner_rgb(c, m, y, k), float)
                    clut += [round(min(v, 1.99997) * 32768) for v in xyz]
    lut = (
        b"mft2\0\0\0\0"
        + struct.pack(">BBBB", 4, 3, 2, 0)
        + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
        + struct.pack(">HH", 2, 2)
        + struct.pack(">8H", *([0, 65535] * 4))
        + struct.pack(f">{len(clut)}H", *clut)
        + struct.pack(">6H", *([0, 65535] * 3))
    )
    return _icc(
        b"prtr",
        b"CMYK",
        [(b"desc", _desc_tag(name)), (b"wtpt", _xyz_tag(D50)), (b"A2B0", lut)],
    )


def rgb_profile(name: str, primaries: np.ndarray) -> bytes:
    """A matrix/shaper RGB profile with gamma 2.2 and the given D50 primaries."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256))
    tags = [(b"desc", _desc_tag(name)), (b"wtpt", _xyz_tag(D50))]
    for i, tag in enumerate((b"rXYZ", b"gXYZ", b"bXYZ")):
        tags.append((tag, _xyz_tag(primaries[:, i])))
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _icc(b"mntr", b"RGB ", tags)


def naive_cmyk(c, m, y, k):
    return ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k))


def cyan_is_red(c, m, y, k):
    """A deliberately odd profile: proves the profile, not a fallback, is used."""
    return (c * (1 - k), m * (1 - k), y * (1 - k))


# --- test images ---------------------------------------------------------------


def photo(width: int = 48, height: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture, height x width x 3 uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1
    )
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def with_alpha(pixels: np.ndarray) -> Image.Image:
    """RGBA with a horizontal alpha ramp, so the alpha channel cannot be dropped."""
    height, width = pixels.shape[:2]
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _palette_with_transparency() -> bytes:
    image = Image.fromarray(photo()).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16
    )
    return save(image, "PNG", transparency=0)


def _cmyk(icc: bytes | None = None) -> bytes:
    image = Image.fromarray(photo()).convert("CMYK")
    params = {"icc_profile": icc} if icc else {}
    return save(image, "JPEG", quality=95, **params)


FORMAT_CASES = {
    "png-rgb": (lambda: save(Image.fromarray(photo()), "PNG"), "PNG", "RGB"),
    "png-rgba": (
        lambda: save(with_alpha(photo()), "PNG"),
        "PNG",
        "RGBA",
    ),
    "png-l": (lambda: save(Image.fromarray(photo()).convert("L"), "PNG"), "PNG", "L"),
    "png-la": (
        lambda: save(Image.fromarray(photo()).convert("LA"), "PNG"),
        "PNG",
        "LA",
    ),
    "png-p": (
        lambda: save(Image.fromarray(photo()).convert("P", colors=64), "PNG"),
        "PNG",
        "P",
    ),
    "png-p-transparency": (_palette_with_transparency, "PNG", "P"),
    "png-1bit": (
        lambda: save(Image.fromarray(photo()).convert("1"), "PNG"),
        "PNG",
        "1",
    ),
    "png-16bit": (
        lambda: save(Image.fromarray(photo()[..., 0].astype(np.uint16) * 257), "PNG"),
        "PNG",
        "I;16",
    ),
    "png-interlaced": (
        lambda: save(Image.fromarray(photo()), "PNG", interlace=1),
        "PNG",
        "RGB",
    ),
    "jpeg-rgb": (
        lambda: save(Image.fromarray(photo()), "JPEG", quality=90),
        "JPEG",
        "RGB",
    ),
    "jpeg-progressive": (
        lambda: save(Image.fromarray(photo()), "JPEG", progressive=True),
        "JPEG",
        "RGB",
    ),
    "jpeg-l": (
        lambda: save(Image.fromarray(photo()).convert("L"), "JPEG"),
        "JPEG",
        "L",
    ),
    "jpeg-cmyk": (_cmyk, "JPEG", "CMYK"),
    "jpeg-cmyk-icc": (
        lambda: _cmyk(cmyk_profile("Test CMYK", naive_cmyk)),
        "JPEG",
        "CMYK",
    ),
    "webp-lossy": (
        lambda: save(Image.fromarray(photo()), "WEBP", quality=80),
        "WEBP",
        "RGB",
    ),
    "webp-lossless": (
        lambda: save(Image.fromarray(photo()), "WEBP", lossless=True),
        "WEBP",
        "RGB",
    ),
    "webp-rgba": (
        lambda: save(with_alpha(photo()), "WEBP", lossless=True),
        "WEBP",
        "RGBA",
    ),
}


@pytest.mark.parametrize("case", sorted(FORMAT_CASES))
@pytest.mark.parametrize("size", [None, 32])
def test_every_format_and_mode_leaves_as_plain_rgb_png(case, size):
    make, fmt, mode = FORMAT_CASES[case]
    data = make()

    image = normalize_image(data, size=size)

    side = size or 40  # centre crop of 48 x 40
    assert (image.width, image.height) == (side, side)
    assert (image.original_format, image.original_mode) == (fmt, mode)
    assert_plain_png(image.data, side, side)
    assert image.digest == hashlib.sha256(image.data).hexdigest()
    assert normalize_image(data, size=size) == image  # deterministic


def test_outputs_share_one_header_and_deflate_setting():
    outputs = [
        normalize_image(make(), size=32).data for make, _, _ in FORMAT_CASES.values()
    ]
    headers = {png_chunks(data)[0][1] for data in outputs}
    zlib_headers = {png_chunks(data)[1][1][:2] for data in outputs}
    assert headers == {struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)}
    # 0x78 0x01: deflate, 32 KiB window, "fastest" level class (zlib level 1).
    assert zlib_headers == {b"\x78\x01"}


def test_metadata_never_reaches_the_output():
    pixels = Image.fromarray(photo())
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "StyleGAN3 sampler")
    info.add_itxt("prompt", "a photo of a cat")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5))
    info.add(b"gAMA", struct.pack(">I", 45455))
    exif = Image.Exif()
    exif[0x0131] = "Canon EOS"  # Software
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    sources = [
        save(pixels, "PNG", pnginfo=info, dpi=(300, 300), icc_profile=srgb, exif=exif),
        save(pixels, "JPEG", exif=exif, icc_profile=srgb, comment=b"made by a model"),
        save(pixels, "WEBP", exif=exif, icc_profile=srgb),
    ]
    assert set(metadata_kinds(sources[0])) >= {"tEXt", "iTXt", "tIME", "gAMA", "pHYs"}
    assert set(metadata_kinds(sources[1])) >= {"EXIF", "ICC", "comment"}
    assert set(metadata_kinds(sources[2])) == {"ICCP", "EXIF"}

    for data in sources:
        image = normalize_image(data)
        assert_plain_png(image.data, 40, 40)
        assert metadata_kinds(image.data) == ()
        assert image.notes == ()  # an sRGB profile needs no transform


def test_same_pixels_give_the_same_digest_whatever_the_format():
    pixels = Image.fromarray(photo())
    png = normalize_image(save(pixels, "PNG"))
    webp = normalize_image(save(pixels, "WEBP", lossless=True))
    rgba = normalize_image(save(pixels.convert("RGBA"), "PNG"))
    assert png.digest == webp.digest == rgba.digest
    assert rgba.notes == ("dropped alpha channel (fully opaque)",)
    assert np.array_equal(pixels_of(png.data), photo()[:, 4:44])


# --- colour conversions, value by value -----------------------------------------


def test_16bit_samples_are_scaled_to_8_bits():
    values = np.array([[0, 300, 128 * 257, 65535] * 4] * 16, dtype=np.uint16)
    image = normalize_image(save(Image.fromarray(values), "PNG"), crop="none")
    out = pixels_of(image.data)
    # round(v / 257): 0, 1.17, 128, 255
    assert out[0, :4, 0].tolist() == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert image.notes == (
        "converted from I;16 to RGB",
        "scaled 16-bit samples to 8 bits",
    )


def test_grey_alpha_is_composited_on_mid_grey():
    grey = np.full((16, 16), 200, np.uint8)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, 4:8] = 128
    alpha[:, 8:] = 255
    image = normalize_image(
        save(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG")
    )
    row = pixels_of(image.data)[0, :, 0]
    # round((200 * a + 128 * (255 - a)) / 255) for a = 0, 128, 255
    assert row[0] == BACKGROUND[0] == 128
    assert row[4] == round((200 * 128 + 128 * 127) / 255) == 164
    assert row[8] == 200
    assert image.notes == (
        "converted from LA to RGB",
        "composited transparency on mid-grey (128, 128, 128)",
    )


def test_palette_transparency_becomes_background():
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    data = save(palette, "PNG", transparency=0)
    assert png_chunks(data)[2][0] == "tRNS"  # the input does carry transparency
    out = pixels_of(normalize_image(data).data)
    assert out[0, 0].tolist() == list(BACKGROUND)
    assert out[0, 12].tolist() == [0, 255, 0]


@pytest.mark.parametrize("mode", ["PA", "La", "RGBa", "RGBX", "YCbCr", "1", "P", "L"])
def test_convert_to_rgb_handles_in_memory_modes(mode):
    image = Image.fromarray(photo(16, 16)).convert("RGBA").convert(mode)
    notes: list[str] = []
    rgb = convert_to_rgb(image, notes=notes)
    assert rgb.mode == "RGB" and rgb.size == (16, 16)
    assert notes[0] == f"converted from {mode} to RGB"


def test_unsupported_mode_is_refused():
    with pytest.raises(StimulusImportError, match="unsupported colour mode F"):
        convert_to_rgb(Image.new("F", (16, 16)), notes=[])


def test_one_bit_images_become_black_and_white():
    bits = Image.new("1", (16, 16), 0)
    bits.paste(1, (8, 0, 16, 16))
    out = pixels_of(normalize_image(save(bits, "PNG")).data)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 15].tolist() == [255, 255, 255]


def _flat_cmyk_jpeg(cmyk: tuple[int, int, int, int], icc: bytes | None) -> bytes:
    image = Image.new("CMYK", (16, 16), cmyk)
    params = {"icc_profile": icc} if icc else {}
    return save(image, "JPEG", quality=100, **params)


def test_cmyk_without_profile_uses_the_naive_conversion():
    image = normalize_image(_flat_cmyk_jpeg((255, 0, 0, 0), None))
    assert np.abs(pixels_of(image.data)[8, 8].astype(int) - [0, 255, 255]).max() <= 3
    assert image.notes == (
        "converted from CMYK to RGB",
        "no usable ICC profile: naive CMYK conversion",
    )


def test_cmyk_with_profile_is_converted_through_the_profile():
    plain = normalize_image(
        _flat_cmyk_jpeg((255, 0, 0, 0), cmyk_profile("Plain", naive_cmyk))
    )
    odd = normalize_image(
        _flat_cmyk_jpeg((255, 0, 0, 0), cmyk_profile("Odd", cyan_is_red))
    )
    assert np.abs(pixels_of(plain.data)[8, 8].astype(int) - [0, 255, 255]).max() <= 4
    # The odd profile maps full cyan to red: only a real ICC transform does that.
    assert np.abs(pixels_of(odd.data)[8, 8].astype(int) - [255, 0, 0]).max() <= 4
    assert odd.notes == (
        "converted from CMYK to RGB",
        "applied the embedded ICC profile 'Odd' (converted to sRGB)",
    )


def test_rgb_with_a_foreign_profile_is_converted_to_srgb():
    swapped = SRGB_TO_XYZ_D50[:, [2, 1, 0]]  # red and blue primaries exchanged
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    data = save(red, "PNG", icc_profile=rgb_profile("Swapped", swapped))
    image = normalize_image(data)
    assert np.abs(pixels_of(image.data)[0, 0].astype(int) - [0, 0, 255]).max() <= 3
    assert image.notes == (
        "applied the embedded ICC profile 'Swapped' (converted to sRGB)",
    )
    assert_plain_png(image.data, 16, 16)


def test_srgb_profile_keeps_pixels_and_a_broken_profile_is_ignored():
    pixels = Image.fromarray(photo(16, 16))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    kept = normalize_image(save(pixels, "PNG", icc_profile=srgb))
    broken = normalize_image(save(pixels, "PNG", icc_profile=b"not a profile at all"))
    assert np.array_equal(pixels_of(kept.data), photo(16, 16)) and kept.notes == ()
    assert np.array_equal(pixels_of(broken.data), photo(16, 16))
    assert broken.notes == ("ignored an unreadable embedded ICC profile",)


# --- orientation, cropping, resizing ---------------------------------------------


def _top_red_bottom_blue() -> Image.Image:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 40, 10))
    return image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt):
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    data = save(_top_red_bottom_blue(), fmt, exif=exif, quality=95)

    image = normalize_image(data, crop="none")

    assert (image.width, image.height) == (20, 40)
    out = pixels_of(image.data).astype(int)
    # After a clockwise turn the stored top (red) is on the right.
    assert np.abs(out[20, 16] - [255, 0, 0]).max() < 40
    assert np.abs(out[20, 3] - [0, 0, 255]).max() < 40
    assert "applied EXIF orientation 6" in image.notes


def test_orientation_1_changes_nothing():
    exif = Image.Exif()
    exif[0x0112] = 1
    image = normalize_image(save(_top_red_bottom_blue(), "PNG", exif=exif), crop="none")
    assert (image.width, image.height) == (40, 20) and image.notes == ()


def _three_bands(width: int = 300, height: int = 200) -> Image.Image:
    """Red left band, green middle square, blue right band."""
    image = Image.new("RGB", (width, height), (0, 255, 0))
    band = (width - height) // 2
    image.paste((255, 0, 0), (0, 0, band, height))
    image.paste((0, 0, 255), (width - band, 0, width, height))
    return image


@pytest.mark.parametrize(
    ("size", "crop", "expected"),
    [
        (None, "center", (200, 200)),
        (64, "center", (64, 64)),
        (None, "none", (300, 200)),
        (64, "none", (64, 43)),
        (300, "none", (300, 200)),
    ],
)
def test_crop_and_resize_sizes(size, crop, expected):
    image = normalize_image(save(_three_bands(), "PNG"), size=size, crop=crop)
    assert (image.width, image.height) == expected
    assert_plain_png(image.data, *expected)


def test_centre_crop_keeps_the_middle_and_resizes_with_lanczos():
    source = _three_bands()
    image = normalize_image(save(source, "PNG"), size=64)
    out = pixels_of(image.data)
    assert (out == [0, 255, 0]).all()  # only the green middle square is left

    textured = Image.fromarray(photo(300, 200))
    image = normalize_image(save(textured, "PNG"), size=64)
    reference = textured.crop((50, 0, 250, 200)).resize(
        (64, 64), Image.Resampling.LANCZOS
    )
    assert np.array_equal(pixels_of(image.data), np.asarray(reference))


def test_upscaling_is_noted():
    image = normalize_image(save(Image.fromarray(photo(20, 20)), "PNG"), size=64)
    assert image.notes == ("upscaled from 20x20 to 64x64",)


def test_encode_png_is_the_pipeline_encoder():
    image = normalize_image(save(Image.fromarray(photo()), "JPEG"), size=32)
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert encode_png(decoded) == image.data
    with pytest.raises(ValueError, match="allowed: 'RGB'"):
        encode_png(Image.new("L", (4, 4)))


# --- refusals -------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG that claims a huge size; refused before any pixel is decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 100)
    chunks = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    return PNG_SIGNATURE + chunks


REFUSALS = {
    "empty": (lambda: b"", "empty file"),
    "text": (lambda: b"this is a text file, not a picture\n", "not an image"),
    "truncated-png": (
        lambda: save(Image.fromarray(photo()), "PNG")[:600],
        "truncated or corrupt image",
    ),
    "truncated-jpeg": (
        lambda: save(Image.fromarray(photo()), "JPEG")[:700],
        "truncated or corrupt image",
    ),
    "truncated-webp": (
        lambda: save(Image.fromarray(photo()), "WEBP")[:200],
        "truncated or corrupt image",
    ),
    "signature-only": (lambda: PNG_SIGNATURE, "truncated or corrupt image"),
    "gif": (
        lambda: save(Image.fromarray(photo()), "GIF"),
        "unsupported format GIF (allowed: PNG, JPEG, WebP)",
    ),
    "bmp": (
        lambda: save(Image.fromarray(photo()), "BMP"),
        "unsupported format BMP (allowed: PNG, JPEG, WebP)",
    ),
    "tiff": (
        lambda: save(Image.fromarray(photo()), "TIFF"),
        "unsupported format TIFF (allowed: PNG, JPEG, WebP)",
    ),
    "tiny": (
        lambda: save(Image.new("RGB", (8, 12)), "PNG"),
        "image too small (8x12, minimum 16x16)",
    ),
    "huge": (
        lambda: _huge_png_header(10_000, 9_000),
        "image too large (10000x9000, maximum 80,000,000 pixels)",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unusable_files_are_refused_with_their_reason(case):
    make, reason = REFUSALS[case]
    with pytest.raises(StimulusImportError) as caught:
        normalize_image(make())
    assert caught.value.reason == reason == str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_corrupt_pixel_data_is_refused():
    data = bytearray(save(Image.fromarray(photo()), "PNG"))
    data[60:70] = b"\x00" * 10  # inside the first IDAT: breaks its CRC
    with pytest.raises(StimulusImportError, match="truncated or corrupt image"):
        normalize_image(bytes(data))


@pytest.mark.parametrize(
    ("size", "crop"),
    [(0, "center"), (-5, "center"), (1.5, "center"), (True, "center"), (32, "left")],
)
def test_bad_options_name_what_is_allowed(size, crop):
    with pytest.raises(ValueError, match="allowed"):
        check_fit_options(size, crop)
    with pytest.raises(ValueError, match="allowed"):
        normalize_image(save(Image.fromarray(photo()), "PNG"), size=size, crop=crop)


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"RIFF\0\0\0\0WEBPVP8 ", "WEBP"),
        (b"\0\0\0\x1cftypavif", "AVIF"),
        (b"\0\0\0\x18ftypheic", "HEIC"),
        (b"II*\0", "TIFF"),
        (b"hello", None),
    ],
)
def test_sniff_format(head, name):
    assert sniff_format(head) == name


SEEDS = {
    "PNG": save(Image.fromarray(photo(24, 20)), "PNG"),
    "JPEG": save(Image.fromarray(photo(24, 20)), "JPEG"),
    "WEBP": save(Image.fromarray(photo(24, 20)), "WEBP"),
    "CMYK": _cmyk(cmyk_profile("Test CMYK", naive_cmyk)),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
)
def test_damaged_files_either_import_or_are_refused_cleanly(seed, cut, flips):
    data = bytearray(SEEDS[seed])
    for position, value in flips:
        data[position % len(data)] = value
    damaged = bytes(data[: max(cut, 1)] if cut < len(data) else data)
    try:
        image = normalize_image(damaged, size=16)
    except StimulusImportError as exc:
        fixed = {"empty file", "not an image", "truncated or corrupt image"}
        templated = (
            "image too small (",
            "image too large (",
            "unsupported format ",
            "unsupported colour mode ",
        )
        assert exc.reason in fixed or exc.reason.startswith(templated), exc.reason
    else:
        assert_plain_png(image.data, 16, 16)
