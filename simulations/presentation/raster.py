"""A Figure as PNG bytes for the report: drawn once on an Agg canvas that sets each line of
text in one go, and written as a PNG without a second pass over the pixels.

``png(fig, dpi)`` is what ``report.write_report`` saves. Two things make it cheaper than
``fig.savefig(..., format="png")`` while drawing the same picture:

- Text. Since matplotlib 3.11 the Agg renderer rasterizes text glyph by glyph, each glyph a
  Python loop iteration with its own FreeType transform, about a millisecond per label. The
  report's figures hold hundreds of labels, so ``TextRenderer`` sets a plain (non-math,
  unrotated or upright) line the way FreeType lays out a string: the whole line into one
  bitmap, then one ``draw_text_image`` call. The text's size and place come from the same
  font, size, resolution and hinting as matplotlib's own (glyphs land within a pixel of where
  matplotlib puts them); math text, other angles and font features take matplotlib's path.
  A line the figure's builder measured already (``measure``: node labels, legend entries,
  lane names, whose widths size the boxes and margins) is drawn from that measurement.
- Encoding. The figures are opaque, so the alpha channel is dropped, and the rows are stored
  unfiltered at zlib level 1: flat colours on white compress as well as Pillow's adaptive
  filters at level 3 (smaller, on these figures) in half the time.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import OrderedDict
from typing import Any, NamedTuple

from faultmesh.model.extras import requires

with requires("data", "faultmesh.plots"):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
    from matplotlib.font_manager import FontProperties, fontManager, get_font

# Matplotlib 3.11 rasterizes text glyph by glyph (this method); older versions already set a
# line in one bitmap and draw it with their own code, which ``TextRenderer`` leaves alone.
GLYPH_BY_GLYPH = hasattr(RendererAgg, "_draw_text_glyphs_and_boxes")


# The report's resolution, and the one ``measure`` sets text at (hinting makes a text's width in
# points depend a little on the pixel size): 6 pt text, the smallest the figures set, is 9
# pixels high.
DPI = 110


class _Line(NamedTuple):
    """A line of text as set: its size in pixels, and its bitmap and where that sits."""

    width: float
    height: float
    descent: float
    offset: tuple[float, float]
    image: Any


_Key = tuple[str, tuple[Any, ...], float, float, Any, bool]


def _set_line(key: _Key) -> _Line:
    """Lay out and rasterize a line with FreeType, as matplotlib's Agg renderer measures it."""
    text, fonts, size, dpi, hinting, antialiased = key
    font = get_font(list(fonts))
    font.clear()  # the font object is shared: no state from whoever used it last
    font.set_size(size, dpi)
    font.set_text(text, 0.0, flags=hinting)
    font.draw_glyphs_to_bitmap(antialiased=antialiased)
    width, height = font.get_width_height()  # 26.6 fixed point, as the offsets
    offset = font.get_bitmap_offset()
    return _Line(width / 64, height / 64, font.get_descent() / 64,
                 (offset[0] / 64, offset[1] / 64), font.get_image())


def _fonts(prop: Any) -> tuple[Any, ...]:
    """The font files a text in ``prop`` is set in (the first, then fallbacks), picked as the
    renderer picks them."""
    return tuple(fontManager._find_fonts_by_props(prop))


def _key(text: str, fonts: tuple[Any, ...], prop: Any, dpi: float, antialiased: bool) -> _Key:
    return (text, fonts, float(prop.get_size_in_points()), float(dpi), get_hinting_flag(),
            antialiased)


# Lines measured by the figures' builders, kept (the most recent MEASURED_LINES) for drawing.
MEASURED_LINES = 4096
_measured: OrderedDict[_Key, _Line] = OrderedDict()


def measure(text: str, size: float, bold: bool = False) -> float:
    """How wide ``text`` is set at ``size`` points in the default font, in points, measured as
    the Agg renderer measures it at ``DPI`` (the same font, size, resolution and hinting) but
    without a figure. The line set is kept: the report draws it from here."""
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    key = _key(text, _fonts(prop), prop, DPI, True)
    line = _measured.get(key)
    if line is None:
        line = _measured[key] = _set_line(key)
        if len(_measured) > MEASURED_LINES:
            _measured.popitem(last=False)
    else:
        _measured.move_to_end(key)
    return line.width * 72 / DPI


class TextRenderer(RendererAgg):
    """The Agg renderer, setting each plain line of text as one bitmap, once: the bitmap is
    made when the line is measured (laying out a line with FreeType is most of the cost of a
    label, drawing its glyphs into a bitmap a tenth of it) and kept for when it is drawn."""

    def __init__(self, width: float, height: float, dpi: float) -> None:
        super().__init__(width, height, dpi)
        self._lines: dict[_Key, _Line] = {}
        self._font_files: dict[int, tuple[Any, ...]] = {}  # by the properties' hash

    def get_text_width_height_descent(self, s: str, prop: Any, ismath: Any) -> Any:
        if ismath or not GLYPH_BY_GLYPH:
            return super().get_text_width_height_descent(s, prop, ismath)
        line = self._line(s, prop, True)
        return line.width, line.height, line.descent

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if not _plain(ismath, angle, mtext):
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            return
        line = self._line(s, prop, bool(gc.get_antialiased()))
        # (x, y) is the text's baseline origin, y downwards; the bitmap's top-left corner sits
        # the font's descent below the baseline's origin and its own offset from it, turned
        # by the angle as the text is.
        turn = math.radians(angle)
        left = round(x + line.offset[0] + line.descent * math.sin(turn))
        top = round(y + line.offset[1] + line.descent * math.cos(turn))
        self._renderer.draw_text_image(line.image, left, top + 1, angle, gc)

    def _line(self, s: str, prop: Any, antialiased: bool) -> _Line:
        # Font properties compare by their hash, as matplotlib's own text metrics cache keys.
        fonts = self._font_files.get(hash(prop))
        if fonts is None:
            fonts = self._font_files[hash(prop)] = _fonts(prop)
        key = _key(s, fonts, prop, self.dpi, antialiased)
        line = self._lines.get(key) or _measured.get(key)
        if line is None:
            line = _set_line(key)
        self._lines[key] = line
        return line


def _plain(ismath: Any, angle: float, mtext: Any) -> bool:
    """Whether a line can be set in one bitmap: no math or TeX, horizontal or upright (the
    rotations ``draw_text_image`` turns exactly), no OpenType features or language asked for
    (those need matplotlib's own layout)."""
    if not GLYPH_BY_GLYPH or ismath or angle % 360 not in (0, 90):
        return False
    return mtext is None or (not mtext.get_fontfeatures() and not mtext.get_language())


class Canvas(FigureCanvasAgg):
    """An Agg canvas drawing with ``TextRenderer``."""

    def get_renderer(self) -> Any:
        width, height = self.get_width_height(physical=True)
        key = width, height, self.figure.dpi
        if self._lastKey != key:
            self.renderer = TextRenderer(width, height, self.figure.dpi)
            self._lastKey = key
        return self.renderer


def png(fig: Any, dpi: float) -> bytes:
    """``fig`` drawn once at ``dpi`` as PNG bytes (the figure keeps its own dpi after)."""
    own = fig.dpi
    fig.set_dpi(dpi)
    try:
        canvas = Canvas(fig)
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())
        return encode_png(pixels, dpi)
    finally:
        fig.set_dpi(own)


def encode_png(rgba: Any, dpi: float | None = None) -> bytes:
    """An RGBA image (rows top first, uint8) as PNG bytes: RGB when every pixel is opaque,
    rows unfiltered, zlib level 1; with ``dpi``, a pHYs chunk records the resolution."""
    pixels = np.asarray(rgba, dtype=np.uint8)
    height, width, _ = pixels.shape
    opaque = bool((pixels[..., 3] == 255).all())
    channels = 3 if opaque else 4
    rows = np.empty((height, width * channels + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    into = rows[:, 1:].reshape(height, width, channels)
    for channel in range(channels):  # a plane at a time: 3-of-4-byte strides copy slowly
        into[..., channel] = pixels[..., channel]
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                          2 if opaque else 6, 0, 0, 0))]
    if dpi is not None:
        per_metre = round(dpi / 0.0254)
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    chunks.append(_chunk(b"IDAT", zlib.compress(rows.data, 1)))
    chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


__all__ = ["DPI", "Canvas", "TextRenderer", "encode_png", "measure", "png"]
