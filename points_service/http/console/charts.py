"""Charts drawn as inline SVG on the server: no script, no library, nothing to load. Each
chart is an image with a title for screen readers; the page shows the same figures in a
table beside it."""

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 36


def _nice_ceiling(value: int) -> int:
    """1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def bar_chart(title: str, labels: Sequence[str], values: Sequence[int], css: str) -> Markup:
    """Bars of `values` over `labels` (months), a y axis with three ticks."""
    if len(labels) != len(values):
        raise ValueError("one label per value")
    top = _nice_ceiling(max(values, default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(1, len(values))
    bar = slot * 0.7
    parts = [
        f'<svg class="chart {escape(css)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, top // 2, top):
        y = TOP + inner_h - inner_h * tick / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + n * slot + (slot - bar) / 2
        h = inner_h * value / top
        y = TOP + inner_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value:,}</title></rect>"
            f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or a number
