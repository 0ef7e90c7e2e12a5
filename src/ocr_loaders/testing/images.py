"""Image sniffing for the fake server: size and type from the header, without decoding pixels.

The fake server must stay cheap under load (benchmarks run the client on the same machine), so
PNG, JPEG and WebP are read from their headers, and checked for a proper end (PNG ``IEND``, JPEG
``EOI``, WebP RIFF length) so a truncated upload is still rejected as a real server would. Other
formats fall back to Pillow, which reads only the header too.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib
from dataclasses import dataclass

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...); not C4/C8/CC.
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


class ImageError(ValueError):
    """The bytes are not an image the server can read; the message says why."""


class DataURLError(ValueError):
    """The URL is not a usable ``data:`` URL. ``unsupported`` marks valid-but-unsupported ones."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the server learned about an uploaded image."""

    width: int
    height: int
    mime: str
    """The type found in the bytes (``image/png``...), whatever the data URL declared."""


def _png(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG header")
    width, height = struct.unpack(">II", data[16:24])
    if not data.endswith(_PNG_IEND):
        raise ImageError("truncated PNG: no IEND chunk at the end")
    return ImageInfo(width, height, "image/png")


def _jpeg(data: bytes) -> ImageInfo:
    n = len(data)
    i = 2
    size: tuple[int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageError("corrupt JPEG: marker expected")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: the header is over
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (width, height)
            break
        i += 2 + length
    if size is None:
        raise ImageError("corrupt JPEG: no frame header")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageError("truncated JPEG: no end-of-image marker")
    return ImageInfo(size[0], size[1], "image/jpeg")


def _webp(data: bytes) -> ImageInfo:
    if len(data) < 30:
        raise ImageError("truncated WebP header")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if len(data) < riff_size + 8:
        raise ImageError("truncated WebP: shorter than its RIFF size")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ImageError("corrupt WebP: bad VP8 frame start")
        w, h = struct.unpack("<HH", data[26:30])
        return ImageInfo(w & 0x3FFF, h & 0x3FFF, "image/webp")
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageError("corrupt WebP: bad VP8L signature")
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageInfo((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, "image/webp")
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo(w, h, "image/webp")
    raise ImageError(f"unsupported WebP chunk {chunk!r}")


def _pillow(data: bytes) -> ImageInfo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"cannot identify image file: {exc}") from None
    return ImageInfo(width, height, Image.MIME.get(fmt, f"image/{fmt.lower()}"))


def image_crc(data: bytes) -> int:
    """A CRC-32 of what an image shows, not of how it was compressed.

    Two PNG encoders (or one fast encoder run twice: ISA-L's deflate is not byte-stable
    across processes) can write the same pixels as different bytes; the fake's answers and
    faults hang on this number, so a page gets the same answer whoever encoded it. It is the
    CRC of the decoded pixels with their size and mode (about 12 ms for a 1224x1584 page), or
    of the bytes when Pillow cannot decode them.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            head = f"{im.width}x{im.height} {im.mode}".encode()
            return zlib.crc32(im.tobytes(), zlib.crc32(head))
    except Exception:  # Pillow raises many types; the bytes still name the image
        return zlib.crc32(data)


def image_ink(data: bytes) -> float:
    """How much of an image is ink: 1 minus its mean brightness in gray (0 blank, 1 black).

    A page's ink grows with the text on it, at any resolution (anti-aliased edges keep the
    mean), so the fake can make an answer as long as its page's text (``Workload.ink_tokens``).
    0 when Pillow cannot decode the bytes.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            hist = im.convert("L").histogram()
    except Exception:  # Pillow raises many types; such an image is answered as blank
        return 0.0
    total = sum(hist)
    return 1.0 - sum(v * n for v, n in enumerate(hist)) / (255.0 * total) if total else 0.0


def sniff_image(data: bytes, *, full_decode: bool = False) -> ImageInfo:
    """Size and type of an encoded image, from its header; raises :class:`ImageError`.

    ``full_decode`` also decodes every pixel with Pillow (as vLLM does), which catches damage
    inside the data at a real CPU cost; the default header-and-trailer check catches
    truncation and garbage.
    """
    if data.startswith(_PNG_SIG):
        info = _png(data)
    elif data[:3] == b"\xff\xd8\xff":
        info = _jpeg(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        info = _webp(data)
    else:
        info = _pillow(data)
    if info.width <= 0 or info.height <= 0:
        raise ImageError(f"image has no pixels ({info.width}x{info.height})")
    if full_decode:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception as exc:  # Pillow raises many types for broken data
            raise ImageError(f"image cannot be decoded: {exc}") from None
    return info


def decode_data_url(url: str) -> tuple[str, bytes]:
    """Split a ``data:<mime>;base64,<data>`` URL into its declared type and bytes.

    Raises :class:`DataURLError` for anything else (vLLM: only base64 data URLs; this fake
    server has no network, so ``http(s)`` and ``file`` URLs are refused too).
    """
    if not url.startswith("data:"):
        scheme = url.split(":", 1)[0] if ":" in url else "(none)"
        raise DataURLError(
            f"The fake DeepSeek-OCR server only accepts data: URLs, got scheme {scheme!r}",
            unsupported=True,
        )
    head, sep, payload = url[5:].partition(",")
    if not sep:
        raise DataURLError("Invalid data URL: no ',' separator")
    media_type, _, encoding = head.partition(";")
    if encoding != "base64":
        raise DataURLError("Only base64 data URLs are supported for now.", unsupported=True)
    if not media_type.startswith("image/"):
        raise DataURLError(f"Expected an image media type in the data URL, got {media_type!r}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataURLError(f"Invalid base64 image data: {exc}") from None
    if not data:
        raise DataURLError("Empty image data in the data URL")
    return media_type, data


def data_url(image: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,...`` for ``image`` (what a client sends)."""
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
