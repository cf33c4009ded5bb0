"""Normalising one image: decode, convert to 8-bit sRGB, crop, resize, re-encode.

Every stimulus goes through :func:`normalize_image`, so the bytes a
participant's browser receives say nothing about where an image came from:
real photographs and generated samples leave as PNG files written by the same
encoder with the same settings, holding only the ``IHDR``, ``IDAT`` and
``IEND`` chunks (no EXIF, ICC profile, text, ``pHYs``, ``gAMA`` or ``tIME``).

The pipeline, in order:

1. Identify the format from the file's first bytes: PNG, JPEG (MPO too) and
   WebP are accepted; anything else is refused with a reason (see
   :data:`PROBLEM_REASONS`).
2. Decode fully (truncated or corrupt data is refused, never padded; this
   relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``,
   which this package never changes), take the first frame of an animation,
   and apply the EXIF orientation.
3. Convert to 8-bit RGB. 16-bit greyscale is scaled (``round(v / 257)``);
   palette, 1-bit and greyscale images are expanded; CMYK, and any image with
   an embedded ICC profile other than sRGB, is converted to sRGB with
   ``PIL.ImageCms`` (perceptual intent). CMYK without a profile falls back to
   Pillow's naive conversion. Transparency is composited on mid-grey
   :data:`BACKGROUND`; an alpha channel that is fully opaque is dropped.
4. With ``crop="center"``, cut the largest centred square; with ``size``,
   resize with Lanczos to ``size`` x ``size`` (or, with ``crop="none"``, so
   that the longer side is ``size``).
5. Encode as PNG from a fresh image with empty ``info``, zlib level
   :data:`PNG_COMPRESS_LEVEL`, no ``optimize`` pass.

Anything done to an image beyond re-encoding is listed in
:attr:`NormalizedImage.notes`, for the import report.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from PIL import Image, ImageCms, ImageOps

Crop = Literal["center", "none"]
CROPS: tuple[str, ...] = ("center", "none")

#: Formats accepted for import, by Pillow's name; MPO is a multi-frame JPEG.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
ALLOWED_TEXT = "PNG, JPEG, WebP"
#: Transparent pixels are composited on this sRGB grey (straight alpha,
#: gamma-encoded values, as a browser composites on a grey page).
BACKGROUND: tuple[int, int, int] = (128, 128, 128)
#: zlib level of every output PNG; fixed so equal pixels give equal bytes.
#: Level 1 encoded photographs in 0.23-0.44 of level 6's time, for files 4-12%
#: larger (benchmarks/stimuli/README.md).
PNG_COMPRESS_LEVEL = 1
#: The shortest side accepted, in pixels.
MIN_SIDE = 16
#: The largest accepted image, in pixels (below Pillow's decompression-bomb
#: warning threshold of about 89 million).
MAX_PIXELS = 80_000_000

#: The reasons a file is refused, as templates; see :class:`StimulusImportError`.
#: The last two come from the importer: a file that cannot be read, and a
#: decoder failure of a kind not foreseen here (reported, never fatal).
PROBLEM_REASONS: tuple[str, ...] = (
    "empty file",
    "not an image",
    "truncated or corrupt image",
    "unsupported format <X> (allowed: PNG, JPEG, WebP)",
    "unsupported colour mode <X>",
    "image too small (<w>x<h>, minimum 16x16)",
    "image too large (<w>x<h>, maximum 80,000,000 pixels)",
    "image too large (more than 80,000,000 pixels)",
    "cannot read the file (<error>)",
    "unexpected decoder error (<error>)",
)

# File signatures: the accepted formats, then formats that are named in the
# refusal so the researcher knows what to convert.
_ACCEPTED_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))
_OTHER_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"8BPS", "PSD"),
    (b"qoif", "QOI"),
    (b"\x00\x00\x01\x00", "ICO"),
)
_ISO_BRANDS = {
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
}

_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# Exceptions that Pillow's decoders raise on damaged data.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
)


class StimulusImportError(ValueError):
    """A file or folder cannot be imported; the message says why.

    For a single file the message is one of :data:`PROBLEM_REASONS` with its
    placeholders filled in, and is also available as :attr:`reason`.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageProblem:
    """A file that was skipped, and the reason (one of :data:`PROBLEM_REASONS`)."""

    path: str
    reason: str


@dataclass(frozen=True)
class NormalizedImage:
    """One image after :func:`normalize_image`.

    Attributes
    ----------
    data : bytes
        The PNG file (``IHDR``, ``IDAT`` and ``IEND`` chunks only).
    digest : str
        SHA-256 of ``data``, hex; the stimulus's key in a content store.
    width, height : int
        Size of the output image, in pixels.
    original_format : str
        ``PNG``, ``JPEG`` or ``WEBP``.
    original_mode : str
        Pillow's colour mode of the decoded file (``RGB``, ``CMYK``, ``I;16``,
        ``P``, ...).
    notes : tuple of str
        Every change beyond re-encoding: colour conversions, EXIF orientation,
        alpha handling, upscaling, decoder warnings. Empty for an 8-bit RGB
        file without a profile that needed no upscaling.
    """

    data: bytes
    digest: str
    width: int
    height: int
    original_format: str
    original_mode: str
    notes: tuple[str, ...] = ()


@dataclass
class DecodedImage:
    """A decoded file converted to 8-bit RGB, before cropping and resizing."""

    image: Image.Image
    original_format: str
    original_mode: str
    notes: list[str]


def sniff_format(data: bytes) -> str | None:
    """Return the image format that ``data`` starts with, or None.

    Parameters
    ----------
    data : bytes
        The start of a file (16 bytes suffice).

    Returns
    -------
    str or None
        ``PNG``, ``JPEG`` or ``WEBP`` for accepted files; another format's name
        (``GIF``, ``TIFF``, ``AVIF``, ...) for recognised but refused ones;
        None when the bytes look like no image format.
    """
    for magic, name in _ACCEPTED_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BRANDS:
        return _ISO_BRANDS[data[8:12]]
    return None


def _open(data: bytes) -> Image.Image:
    """Identify, open and fully decode ``data``."""
    if not data:
        raise StimulusImportError("empty file")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise StimulusImportError("not an image")
    if fmt not in ALLOWED_FORMATS:
        raise StimulusImportError(f"unsupported format {fmt} (allowed: {ALLOWED_TEXT})")
    try:
        # Pillow's JPEG opener returns an MPO image for multi-picture files.
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise StimulusImportError(
            f"image too large (more than {MAX_PIXELS:,} pixels)"
        ) from None
    except _DECODE_ERRORS:
        # Includes UnidentifiedImageError: the signature matched, the rest not.
        raise StimulusImportError("truncated or corrupt image") from None

    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise StimulusImportError(
            f"image too small ({width}x{height}, minimum {MIN_SIDE}x{MIN_SIDE})"
        )
    if width * height > MAX_PIXELS:
        raise StimulusImportError(
            f"image too large ({width}x{height}, maximum {MAX_PIXELS:,} pixels)"
        )
    try:
        image.load()
    except _DECODE_ERRORS:
        raise StimulusImportError("truncated or corrupt image") from None
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale a 16- or 32-bit integer greyscale image to 8 bits."""
    values = np.asarray(image).astype(np.float64)
    # PNG's 16-bit samples span 0..65535; 65535 / 257 = 255 exactly.
    scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Return the colour part of ``image`` (L, RGB or CMYK) and its alpha band."""
    mode = image.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and "transparency" in image.info:
        # A tRNS colour key: Pillow turns it into an alpha band on RGBA.
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("La", "RGBa"):
        # Premultiplied alpha: undo it so compositing sees straight alpha.
        image = image.convert(mode.upper())
    elif mode in ("RGBX", "YCbCr"):
        image = image.convert("RGB")

    if image.mode == "LA":
        return image.getchannel("L"), image.getchannel("A")
    if image.mode == "RGBA":
        return image.convert("RGB"), image.getchannel("A")
    if image.mode in ("L", "RGB", "CMYK"):
        return image, None
    raise StimulusImportError(f"unsupported colour mode {image.mode}")


def _profile_description(profile: ImageCms.ImageCmsProfile) -> str:
    try:
        return ImageCms.getProfileDescription(profile).strip()
    except ImageCms.PyCMSError:
        return ""


def _apply_profile(
    colour: Image.Image, icc: bytes | None, notes: list[str]
) -> Image.Image:
    """Convert the colour part (L, RGB or CMYK) to sRGB, using ``icc`` if given."""
    profile = None
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        except (ImageCms.PyCMSError, OSError, ValueError):
            notes.append("ignored an unreadable embedded ICC profile")
    if profile is not None:
        description = _profile_description(profile)
        # An sRGB profile on an RGB image needs no transform; skipping it keeps
        # the pixels exact instead of rounding them through lcms.
        if colour.mode == "RGB" and description.lower().startswith("srgb"):
            return colour
        try:
            converted = ImageCms.profileToProfile(
                colour,
                profile,
                ImageCms.createProfile("sRGB"),
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            notes.append(
                f"ignored an embedded ICC profile that does not fit a "
                f"{colour.mode} image"
            )
        else:
            notes.append(
                f"applied the embedded ICC profile {description or '(unnamed)'!r} "
                "(converted to sRGB)"
            )
            return cast(Image.Image, converted)

    if colour.mode == "CMYK":
        notes.append("no usable ICC profile: naive CMYK conversion")
    return colour.convert("RGB")


def _composite(
    rgb: Image.Image, alpha: Image.Image | None, notes: list[str]
) -> Image.Image:
    """Composite ``rgb`` with straight ``alpha`` on :data:`BACKGROUND`."""
    if alpha is None:
        return rgb
    if alpha.getextrema() == (255, 255):
        notes.append("dropped alpha channel (fully opaque)")
        return rgb
    a = np.asarray(alpha, dtype=np.uint32)[..., None]
    colour = np.asarray(rgb, dtype=np.uint32)
    background = np.array(BACKGROUND, dtype=np.uint32)
    # Integer form of round(c * a / 255 + bg * (1 - a / 255)).
    mixed = (colour * a + background * (255 - a) + 127) // 255
    notes.append(f"composited transparency on mid-grey {BACKGROUND}")
    return Image.fromarray(mixed.astype(np.uint8), "RGB")


def _orient(image: Image.Image, notes: list[str]) -> Image.Image:
    """Apply the EXIF orientation tag, if the file has one other than 1."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        notes.append("ignored unreadable EXIF data")
        return image
    if orientation not in range(2, 9):
        return image
    notes.append(f"applied EXIF orientation {orientation}")
    return cast(Image.Image, ImageOps.exif_transpose(image))


def convert_to_rgb(
    image: Image.Image, *, icc: bytes | None = None, notes: list[str]
) -> Image.Image:
    """Convert a decoded image in any colour mode to 8-bit sRGB without alpha.

    Parameters
    ----------
    image : PIL.Image.Image
        A decoded image: ``1``, ``L``, ``LA``, ``La``, ``P``, ``PA``, ``I;16``,
        ``I``, ``RGB``, ``RGBA``, ``RGBa``, ``RGBX``, ``YCbCr`` or ``CMYK``.
    icc : bytes or None
        The file's embedded ICC profile, if any.
    notes : list of str
        Receives one note per change (mode conversion, 16-bit scaling, ICC
        transform, alpha handling).

    Returns
    -------
    PIL.Image.Image
        An RGB image.

    Raises
    ------
    StimulusImportError
        ``unsupported colour mode <X>`` for other modes (``F``, ``LAB``, ...).
    """
    if image.mode not in ("RGB", "RGBA"):
        notes.append(f"converted from {image.mode} to RGB")
    if image.mode in _WIDE_GREY_MODES:
        image = _to_8bit(image)
        notes.append("scaled 16-bit samples to 8 bits")
    colour, alpha = _split_alpha(image)
    rgb = _apply_profile(colour, icc, notes)
    return _composite(rgb, alpha, notes)


def decode_image(data: bytes) -> DecodedImage:
    """Decode a PNG, JPEG or WebP file to an upright 8-bit sRGB image.

    Steps 1-3 of the module's pipeline: no cropping, resizing or encoding.

    Parameters
    ----------
    data : bytes
        The file's bytes.

    Returns
    -------
    DecodedImage
        The RGB image, the file's format and colour mode, and notes.

    Raises
    ------
    StimulusImportError
        With one of :data:`PROBLEM_REASONS` when the file cannot be used.
    """
    notes: list[str] = []
    # Decoder warnings (corrupt EXIF and the like) become notes rather than
    # noise on stderr; MAX_PIXELS is checked before Pillow's own bomb warning
    # could matter.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = _open(data)
        original_format = "JPEG" if image.format == "MPO" else str(image.format)
        original_mode = image.mode
        icc = image.info.get("icc_profile")

        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"used the first of {frames} frames")
        image = _orient(image, notes)
        rgb = convert_to_rgb(image, icc=icc, notes=notes)
    notes += [
        f"decoder warning: {w.message}"
        for w in caught
        if not issubclass(w.category, Image.DecompressionBombWarning)
    ]
    return DecodedImage(rgb, original_format, original_mode, notes)


def check_fit_options(size: int | None, crop: str) -> None:
    """Raise ValueError unless ``size`` and ``crop`` are allowed.

    Parameters
    ----------
    size : int or None
        A positive number of pixels, or None.
    crop : str
        ``center`` or ``none``.
    """
    if crop not in CROPS:
        raise ValueError(f"crop: got {crop!r}; allowed: 'center', 'none'")
    valid_int = isinstance(size, int) and not isinstance(size, bool) and size >= 1
    if size is not None and not valid_int:
        raise ValueError(f"size: got {size!r}; allowed: a positive integer or None")


def fit_image(
    image: Image.Image, *, size: int | None, crop: Crop, notes: list[str]
) -> Image.Image:
    """Centre-crop and resize an RGB image as :func:`normalize_image` does.

    Parameters
    ----------
    image : PIL.Image.Image
        An RGB image.
    size : int or None
        Output side in pixels, or None to keep the size.
    crop : {"center", "none"}
        ``center`` cuts the largest centred square first; ``none`` keeps the
        aspect ratio and makes the longer side ``size``.
    notes : list of str
        Receives ``"upscaled from WxH to WxH"`` when the image is enlarged.

    Returns
    -------
    PIL.Image.Image
        The cropped and resized image.
    """
    check_fit_options(size, crop)
    width, height = image.size
    if crop == "center" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if size is None:
        return image

    current = image.size
    scale = size / max(current)
    target = (
        (size, size)
        if crop == "center"
        else (max(1, round(current[0] * scale)), max(1, round(current[1] * scale)))
    )
    if target == current:
        return image
    if target[0] > current[0] or target[1] > current[1]:
        notes.append(
            f"upscaled from {current[0]}x{current[1]} to {target[0]}x{target[1]}"
        )
    return image.resize(target, Image.Resampling.LANCZOS)


def encode_png(image: Image.Image) -> bytes:
    """Encode an RGB image as PNG through the one output pipeline.

    The image is copied into a fresh ``Image`` with empty ``info`` so nothing
    but the pixels can reach the file: Pillow then writes ``IHDR``, ``IDAT``
    and ``IEND`` only.

    Parameters
    ----------
    image : PIL.Image.Image
        An 8-bit RGB image.

    Returns
    -------
    bytes
        The PNG file.
    """
    if image.mode != "RGB":
        raise ValueError(f"encode_png: got mode {image.mode!r}; allowed: 'RGB'")
    fresh = Image.frombytes("RGB", image.size, image.tobytes())
    buffer = io.BytesIO()
    fresh.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buffer.getvalue()


def normalize_image(
    data: bytes, *, size: int | None = None, crop: Crop = "center"
) -> NormalizedImage:
    """Turn an image file into a stimulus PNG that gives nothing away.

    Parameters
    ----------
    data : bytes
        A PNG, JPEG or WebP file in any colour mode.
    size : int or None, default None
        Output side in pixels; None keeps the (cropped) size.
    crop : {"center", "none"}, default "center"
        ``center``: cut the largest centred square, then resize to ``size`` x
        ``size``. ``none``: keep the aspect ratio; the longer side becomes
        ``size``.

    Returns
    -------
    NormalizedImage
        The PNG bytes, their SHA-256 digest, the output size, the original
        format and mode, and notes on every conversion.

    Raises
    ------
    StimulusImportError
        When the file is empty, not an image, truncated or corrupt, in another
        format, in an unusable colour mode, or too small or too large; the
        message is one of :data:`PROBLEM_REASONS`.
    ValueError
        When ``size`` or ``crop`` is not allowed.

    Notes
    -----
    The digest is of the encoded bytes, so it identifies equal pixels only
    under the same zlib and Pillow versions; stores built on one machine are
    consistent with themselves.

    Examples
    --------
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("CMYK", (40, 30)).save(buffer, "JPEG")
    >>> image = normalize_image(buffer.getvalue(), size=32)
    >>> image.width, image.height, image.original_mode
    (32, 32, 'CMYK')
    """
    check_fit_options(size, crop)
    decoded = decode_image(data)
    notes = decoded.notes
    image = fit_image(decoded.image, size=size, crop=crop, notes=notes)
    encoded = encode_png(image)
    return NormalizedImage(
        data=encoded,
        digest=hashlib.sha256(encoded).hexdigest(),
        width=image.width,
        height=image.height,
        original_format=decoded.original_format,
        original_mode=decoded.original_mode,
        notes=tuple(notes),
    )


def metadata_kinds(data: bytes) -> tuple[str, ...]:
    """Name the metadata a PNG, JPEG or WebP file carries besides its pixels.

    Parameters
    ----------
    data : bytes
        The file's bytes.

    Returns
    -------
    tuple of str
        For PNG, the ancillary chunk types other than ``tRNS`` (``tEXt``,
        ``iCCP``, ``pHYs``, ``eXIf``, ...); for JPEG, ``EXIF``, ``XMP``,
        ``ICC``, ``IPTC``, ``comment`` or ``APPn``; for WebP, ``ICCP``,
        ``EXIF`` and ``XMP``. Each kind once, in file order. Empty for other
        data.
    """
    fmt = sniff_format(data[:16])
    if fmt == "PNG":
        kinds = _png_metadata(data)
    elif fmt == "JPEG":
        kinds = _jpeg_metadata(data)
    elif fmt == "WEBP":
        kinds = _webp_metadata(data)
    else:
        kinds = []
    return tuple(dict.fromkeys(kinds))


def _png_metadata(data: bytes) -> list[str]:
    kinds = []
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        name = kind.decode("latin-1")
        # Lower-case first letter = ancillary chunk; tRNS is pixel data.
        if name[:1].islower() and name != "tRNS":
            kinds.append(name)
        if name == "IEND":
            break
        offset += 12 + length
    return kinds


_JPEG_APP_KINDS = (
    (1, b"Exif\x00", "EXIF"),
    (1, b"http://ns.adobe.com/xap", "XMP"),
    (2, b"ICC_PROFILE", "ICC"),
    (13, b"Photoshop", "IPTC"),
)


def _jpeg_metadata(data: bytes) -> list[str]:
    kinds = []
    offset = 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image
            break
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        payload = data[offset + 4 : offset + 2 + length]
        if marker == 0xFE:
            kinds.append("comment")
        elif 0xE1 <= marker <= 0xEF:
            app = marker - 0xE0
            named = [
                k
                for n, prefix, k in _JPEG_APP_KINDS
                if n == app and payload.startswith(prefix)
            ]
            # APP14 "Adobe" only says how to read the colour channels.
            if not payload.startswith(b"Adobe"):
                kinds.append(named[0] if named else f"APP{app}")
        offset += 2 + length
    return kinds


def _webp_metadata(data: bytes) -> list[str]:
    kinds = []
    offset = 12
    while offset + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[offset : offset + 8])
        name = kind.decode("latin-1").strip()
        if name in ("ICCP", "EXIF", "XMP"):
            kinds.append(name)
        offset += 8 + length + (length & 1)
    return kinds
