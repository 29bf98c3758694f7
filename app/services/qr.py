"""QR codes as inline SVG (no image files, no network)."""
from __future__ import annotations

import io

import segno


def qr_svg(data: str) -> str:
    buf = io.BytesIO()
    segno.make(data, error="m").save(buf, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
    return buf.getvalue().decode()
