"""Reading what a page's canvases show (WebGL or 2-D alike), for the browser tests."""

from __future__ import annotations

from typing import Any

# distinct colours among every `stride`-th pixel, a hash of all pixels, and the size
_CANVAS_STATE = """([sel, stride]) => {
  const c = document.querySelector(sel);
  if (!c || !c.width || !c.height) return null;
  const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
  const ctx = t.getContext('2d'); ctx.drawImage(c, 0, 0);
  const d = ctx.getImageData(0, 0, t.width, t.height).data;
  const colours = new Set(); let h = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] << 16) | (d[i+1] << 8) | d[i+2];
    if ((i / 4) % stride === 0) colours.add(v);
    h = (Math.imul(h, 31) + v) | 0;
  }
  return {colours: colours.size, hash: h, width: t.width, height: t.height};
}"""


def canvas_state(page: Any, selector: str, *, stride: int = 2) -> dict[str, int] | None:
    """``{"colours", "hash", "width", "height"}`` of the canvas at ``selector`` (None if absent or empty)."""
    return page.evaluate(_CANVAS_STATE, [selector, stride])
