"""catalog_search.encoding.images.open_image: every accepted and refused input, generated in memory with Pillow."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog_search.encoding.images import open_image
from catalog_search.exceptions import ImageTooLarge, InvalidImage, UnsupportedImage

RED, GREEN, BLUE, WHITE = (220, 20, 20), (20, 200, 20), (20, 20, 220), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noisy(size: int = 64, seed: int = 0) -> Image.Image:
    """Random pixels: they do not compress, so the pixel data is most of the file."""
    return Image.frombytes("RGB", (size, size), random.Random(seed).randbytes(size * size * 3))


def patch_png_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its IHDR claiming ``width`` x ``height`` (and a valid CRC, so decoders believe it)."""
    assert png[12:16] == b"IHDR"
    data = bytearray(png)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def refused(data, error: type[InvalidImage], **limits) -> InvalidImage:
    """The exact error ``open_image`` raises for ``data`` (not merely a subclass of it)."""
    with pytest.raises(InvalidImage) as info:
        open_image(data, **limits)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    return info.value


# Accepted formats


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_accepted_formats_come_out_rgb(fmt):
    image = Image.new("RGB", (30, 20), RED)
    data = encode(image, fmt)
    assert Image.open(io.BytesIO(data)).format == fmt

    result = open_image(data)

    assert result.mode == "RGB"
    assert result.size == (30, 20)
    assert close(result.getpixel((15, 10)), RED)


def test_multi_picture_jpeg_from_a_phone_is_accepted():
    # Phones and cameras write MPO (a JPEG with extra pictures appended); Pillow reports it as "MPO".
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), RED).save(buffer, "MPO", save_all=True, append_images=[Image.new("RGB", (24, 16), BLUE)])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"

    result = open_image(buffer.getvalue())

    assert (result.mode, result.size) == ("RGB", (24, 16))
    assert close(result.getpixel((12, 8)), RED)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (20, 20), color) for color in (RED, GREEN, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3

    result = open_image(data)

    assert (result.mode, result.size) == ("RGB", (20, 20))
    assert close(result.getpixel((10, 10)), RED)


def test_exif_orientation_is_applied():
    # Left half red, right half blue, stored 40x20 with "rotate 90 degrees clockwise to display" (6).
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6

    result = open_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95))

    assert result.size == (20, 40)
    assert close(result.getpixel((10, 5)), RED)  # what was on the left is now on top
    assert close(result.getpixel((10, 35)), BLUE)


def test_cmyk_jpeg_is_converted_to_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"

    result = open_image(data)

    assert result.mode == "RGB"
    assert close(result.getpixel((8, 8)), (255, 0, 0), tolerance=3)


def test_16_bit_png_is_scaled_to_8_bit():
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((65535, 32768, 0)):
        image.putpixel((x, 0), value)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    result = open_image(data)

    assert result.mode == "RGB"
    assert [result.getpixel((x, 0)) for x in range(3)] == [(255, 255, 255), (127, 127, 127), (0, 0, 0)]


def test_palette_png_with_transparency_is_composited_on_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    image.putpixel((0, 0), 0)  # transparent index
    image.putpixel((1, 0), 1)
    data = encode(image, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"

    result = open_image(data)

    assert result.mode == "RGB"
    assert result.getpixel((0, 0)) == WHITE
    assert result.getpixel((1, 0)) == RED


def test_gif_transparency_is_composited_on_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, *BLUE] + [0] * 762)
    image.putpixel((1, 0), 1)
    result = open_image(encode(image, "GIF", transparency=0))
    assert result.getpixel((0, 0)) == WHITE
    assert result.getpixel((1, 0)) == BLUE


def test_la_png_is_composited_on_white():
    image = Image.new("LA", (2, 1), (0, 0))
    image.putpixel((1, 0), (80, 255))
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "LA"

    result = open_image(data)

    assert result.mode == "RGB"
    assert result.getpixel((0, 0)) == WHITE
    assert result.getpixel((1, 0)) == (80, 80, 80)


def test_rgba_png_is_composited_on_white():
    image = Image.new("RGBA", (3, 1), (*RED, 0))
    image.putpixel((1, 0), (*RED, 255))
    image.putpixel((2, 0), (0, 0, 0, 128))

    result = open_image(encode(image, "PNG"))

    assert result.mode == "RGB"
    assert result.getpixel((0, 0)) == WHITE
    assert result.getpixel((1, 0)) == RED
    assert close(result.getpixel((2, 0)), (127, 127, 127), tolerance=1)


@pytest.mark.parametrize(("mode", "key", "opaque"), [("L", 0, 90), ("RGB", (0, 0, 0), RED)])
def test_colour_key_transparency_is_composited_on_white(mode, key, opaque):
    # PNG's tRNS chunk on a grayscale or truecolour image marks one colour as transparent.
    image = Image.new(mode, (2, 1), key)
    image.putpixel((1, 0), opaque)
    data = encode(image, "PNG", transparency=key)
    assert Image.open(io.BytesIO(data)).info["transparency"] == key

    result = open_image(data)

    assert result.getpixel((0, 0)) == WHITE
    assert result.getpixel((1, 0)) == (opaque if mode == "RGB" else (opaque,) * 3)


def test_grayscale_and_bilevel_become_rgb():
    assert open_image(encode(Image.new("L", (4, 4), 77), "PNG")).getpixel((1, 1)) == (77, 77, 77)
    assert open_image(encode(Image.new("1", (4, 4), 1), "PNG")).getpixel((1, 1)) == WHITE


# Inputs: bytes-like and file objects


def test_file_objects_and_bytes_like_inputs_work():
    data = encode(Image.new("RGB", (12, 8), GREEN), "PNG")
    upload = SimpleUploadedFile("photo.png", data, content_type="image/png")
    for source in (data, bytearray(data), memoryview(data), io.BytesIO(data), upload):
        result = open_image(source)
        assert (result.mode, result.size, result.getpixel((6, 4))) == ("RGB", (12, 8), GREEN), type(source)


# Refused inputs: each with its status and code


def test_empty_input_is_invalid():
    error = refused(b"", InvalidImage)
    assert (error.status, error.code) == (400, "invalid_image")
    refused(io.BytesIO(b""), InvalidImage)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_pixel_data_is_invalid_not_a_crash(fmt, keep):
    data = encode(noisy(), fmt, quality=95) if fmt == "JPEG" else encode(noisy(), fmt)
    error = refused(data[: int(len(data) * keep)], InvalidImage)
    assert (error.status, error.code) == (400, "invalid_image")


HEADER_CUTS = [("PNG", 8), ("PNG", 16), ("PNG", 33), ("PNG", 40), ("JPEG", 3), ("JPEG", 10), ("GIF", 6), ("GIF", 20)]


@pytest.mark.parametrize(("fmt", "cut"), [*HEADER_CUTS, ("WEBP", 20)])
def test_truncated_header_of_an_accepted_format_is_invalid_not_unsupported(fmt, cut):
    # The file says it is a PNG/JPEG/GIF/WebP but breaks off: a corrupt upload (400), not a wrong type (415).
    data = encode(Image.new("RGB", (40, 20), RED), fmt)
    error = refused(data[:cut], InvalidImage)
    assert (error.status, error.code) == (400, "invalid_image")


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file\n",
        b"<!DOCTYPE html><html><body><img src='x.png'></body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        b'{"image": "data:image/png;base64,iVBORw0KGgo="}',
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"\x00",
    ],
    ids=["text", "html", "svg", "json", "pdf", "one-byte"],
)
def test_non_images_are_unsupported(data):
    error = refused(data, UnsupportedImage)
    assert (error.status, error.code) == (415, "unsupported_media_type")


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "TGA"])
def test_other_image_formats_are_unsupported(fmt):
    data = encode(Image.new("RGB", (16, 16), RED), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt
    error = refused(data, UnsupportedImage)
    assert (error.status, error.code) == (415, "unsupported_media_type")
    assert fmt in error.message


def test_too_many_bytes_is_too_large():
    data = encode(noisy(32), "PNG")
    assert open_image(data, max_bytes=len(data)).size == (32, 32)

    error = refused(data, ImageTooLarge, max_bytes=len(data) - 1)

    assert (error.status, error.code) == (413, "image_too_large")
    assert f"{len(data) - 1:,}" in error.message


def test_too_many_bytes_from_a_file_is_refused_without_reading_it_all():
    data = encode(noisy(32), "PNG")
    stream = io.BytesIO(data + b"\0" * 1_000_000)
    refused(stream, ImageTooLarge, max_bytes=len(data))
    assert stream.tell() == len(data) + 1


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (65_535, 1)])
def test_pixel_bomb_header_is_refused_before_decoding(size):
    # A few hundred bytes that claim billions of pixels: refused from the header, nothing allocated.
    bomb = patch_png_size(encode(Image.new("RGB", (1, 1)), "PNG"), *size)
    assert len(bomb) < 100
    error = refused(bomb, ImageTooLarge, max_pixels=60_000)
    assert (error.status, error.code) == (413, "image_too_large")


def test_pixel_limit_is_exact():
    data = encode(Image.new("RGB", (64, 64), RED), "PNG")
    assert open_image(data, max_pixels=64 * 64).size == (64, 64)
    error = refused(data, ImageTooLarge, max_pixels=64 * 64 - 1)
    assert "64x64" in error.message


def test_pixel_limit_above_pillows_own_threshold_is_honoured():
    # 95 megapixels is over Pillow's decompression-bomb warning (89.5 MP); a shop that allows 100 MP gets past
    # the size check, and this header-only file then fails as truncated instead of "too many pixels".
    bomb = patch_png_size(encode(Image.new("RGB", (1, 1)), "PNG"), 10_000, 9_500)
    refused(bomb, ImageTooLarge)  # default limit (40 MP)
    error = refused(bomb, InvalidImage, max_pixels=100_000_000)
    assert error.status == 400


def test_all_image_errors_are_invalid_image_subclasses_for_the_api():
    assert issubclass(ImageTooLarge, InvalidImage) and issubclass(UnsupportedImage, InvalidImage)
    assert [(c.status, c.code) for c in (InvalidImage, ImageTooLarge, UnsupportedImage)] == [
        (400, "invalid_image"),
        (413, "image_too_large"),
        (415, "unsupported_media_type"),
    ]
