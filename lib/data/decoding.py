"""Image files to 8-bit RGB: the one decoder training, evaluation, annotation and
augmentation share (:func:`read_image`), and the size policy (:func:`open_image`).

Every PIL mode is decoded or refused with a :class:`~lib.core.errors.DatasetError` naming the
file: 16-bit grey is scaled from its bit depth (not clipped to white), transparency is
composited over white, images above PIL's decompression-bomb limit are refused unread.
``lib.data.datasets`` re-exports both functions.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lib.core.errors import DatasetError

#: what PIL raises on a damaged or foreign file (besides DecompressionBombError)
DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError,
                 IndexError, struct.error, zlib.error)
#: modes with an alpha channel (or premultiplied alpha); composited over white
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
#: EXIF orientation -> the transpose that shows the image upright
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _too_large(path: Path, pixels: int, size: str, listed: str) -> DatasetError:
    limit = Image.MAX_IMAGE_PIXELS
    return DatasetError(
        f"{path}: image{listed} too large to decode safely: {size}{pixels:,} pixels, above "
        f"PIL's limit of {limit:,} (PIL.Image.MAX_IMAGE_PIXELS, its guard against "
        "decompression bombs); resize the image, or raise that limit if it is genuine")


def open_image(path: str | Path, *, listed_in: str | Path | None = None) -> Image.Image:
    """``Image.open`` (header only, lazy) with the size policy and errors naming the file.

    An image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89.5 million by default) is
    refused (:class:`DatasetError`) without decoding it: its header may lie (a
    decompression bomb), and no annotation model needs it. ``listed_in`` (a split file)
    is named in the messages."""
    path = Path(path)
    listed = f" listed in {listed_in}" if listed_in is not None else ""
    try:
        with warnings.catch_warnings():  # PIL warns between 1x and 2x its limit; we refuse
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: image file{listed} is missing") from exc
    except Image.DecompressionBombError as exc:  # PIL refuses above 2x its limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path, int(found[1]) if found else 0, "", listed) from exc
    except DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: unreadable image{listed} ({exc})") from exc
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        img.close()
        raise _too_large(path, img.width * img.height, f"{img.width} x {img.height} = ", listed)
    return img


def _declared_bits(img: Image.Image) -> int | None:
    """Bit depth the file declares for an integer grey image (mode I / I;16), read from
    the header before decoding; None when it says nothing."""
    if img.format == "TIFF":
        bits = img.tag_v2.get(258)  # BitsPerSample
        bits = bits[0] if isinstance(bits, tuple) else bits
        if isinstance(bits, int) and 1 <= bits <= 32:
            return bits
    if img.format == "PPM":
        return 16  # PIL scales a PGM with maxval > 255 to the 16-bit range
    for tile in img.tile:
        args = tile.args
        raw = args if isinstance(args, str) else (args[0] if args and isinstance(args[0], str)
                                                   else "")
        if raw.startswith("I;16"):
            return 16
        if raw.startswith("I;32") or raw == "I":
            return 32
    if img.mode.startswith("I;16"):
        return 16
    return None


def _grey_to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")


def _integer_to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """A 16-bit (or fewer) integer grey image scaled from its bit depth to 8 bits, rounded:
    ``round(v * 255 / (2**bits - 1))`` (``v / 257`` for 16 bits)."""
    bits = _declared_bits(img)
    values = np.asarray(img).astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if bits is None:
        bits = 16 if 0 <= low and high <= 65535 else 32
    if bits > 16:
        raise DatasetError(f"{path}: {bits}-bit integer image (mode {img.mode}, values "
                           f"{low}..{high}): only 8- and 16-bit images are read; convert it "
                           "to 8-bit RGB")
    top = 2**bits - 1
    if low < 0 or high > top:
        raise DatasetError(f"{path}: {bits}-bit image with values {low}..{high} outside "
                           f"0..{top}")
    return _grey_to_rgb((values * 255 + top // 2) // top)


def _float_to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """A 32-bit float grey image with values in [0, 1], as ``round(255 v)``."""
    values = np.asarray(img, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DatasetError(f"{path}: 32-bit float image (mode F) with NaN or infinite pixels")
    if values.size and (values.min() < 0 or values.max() > 1):
        raise DatasetError(f"{path}: 32-bit float image (mode F) with values "
                           f"{values.min():g}..{values.max():g}: only floats in [0, 1] are "
                           "read; convert it to 8-bit RGB")
    return _grey_to_rgb(np.round(values * 255))


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        return _integer_to_rgb(img, path)
    if mode == "F":
        return _float_to_rgb(img, path)
    if mode in _ALPHA_MODES or "transparency" in img.info:
        # P/L/RGB with a transparent colour, or an alpha channel: composite over white
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # RGB, L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX, ...
    except ValueError as exc:
        raise DatasetError(f"{path}: unsupported colour mode {mode} ({exc})") from exc


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make the image unusable
        return 1


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit RGB, upright; :class:`DatasetError` naming the file when
    it is missing, unreadable, too large (see :func:`open_image`) or of a mode with no
    8-bit meaning.

    Every PIL mode is decoded: 16-bit grey (PNG, TIFF, PGM) is scaled from its bit depth
    (``round(v / 257)``), not clipped to white; 32-bit float grey in [0, 1] becomes
    ``round(255 v)`` (other floats and 32-bit integers are refused); transparency (alpha,
    a palette's or a colour key) is composited over white; CMYK, YCbCr, LAB, HSV, 1-bit
    and palettes are converted by PIL. 16-bit colour PNGs are reduced by PIL to their high
    byte (at most one level from rounding). The EXIF orientation of camera photos is
    applied."""
    path = Path(path)
    with open_image(path) as img:
        try:
            rgb = _to_rgb(img, path)  # first: the bit depth is read from the undecoded tiles
            orientation = _orientation(img)
        except DatasetError:
            raise
        except DECODE_ERRORS as exc:
            raise DatasetError(f"{path}: unreadable image ({exc})") from exc
    if orientation in _ORIENTATION:
        rgb = rgb.transpose(_ORIENTATION[orientation])
    return rgb
