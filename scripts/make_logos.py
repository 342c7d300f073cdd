"""Draw the Greed kernel logos into kernelspec/.

    python scripts/make_logos.py [OUTDIR]

Writes logo-32x32.png, logo-64x64.png and logo-svg.svg: a green rounded
square with a bold white "G" and an amber lightning bolt (a kernel that acts
fast to keep memory flat). Drawn with matplotlib's Agg and SVG back ends, no
screen needed; the output is deterministic, so re-running it changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

GREEN_DARK = "#0f6b34"
GREEN = "#1f9d55"
WHITE = "#ffffff"
AMBER = "#ffb703"
AMBER_EDGE = "#7a4a00"

# Everything is drawn on a 64 x 64 grid, origin bottom left.
SIZE = 64.0


def _letter_g() -> MplPath:
    """A bold "G", scaled and centred slightly left of the middle."""
    prop = FontProperties(family="DejaVu Sans", weight="bold")
    path = TextPath((0, 0), "G", size=46, prop=prop)
    box = path.get_extents()
    # centre of the glyph at (28, 31)
    shift = Affine2D().translate(28 - (box.x0 + box.x1) / 2, 31 - (box.y0 + box.y1) / 2)
    return shift.transform_path(path)


# A lightning bolt in the upper right corner, over the G's opening.
BOLT = [
    (50.0, 60.0),
    (37.5, 36.0),
    (46.0, 36.0),
    (40.0, 16.0),
    (56.0, 42.0),
    (47.5, 42.0),
    (56.5, 60.0),
]


def draw(fig: Figure) -> None:
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, SIZE)
    ax.set_ylim(0, SIZE)
    ax.set_aspect("equal")
    ax.axis("off")
    # Background: two stacked rounded squares give a subtle bevel.
    ax.add_patch(
        FancyBboxPatch(
            (2, 2),
            60,
            60,
            boxstyle="round,pad=0,rounding_size=13",
            facecolor=GREEN_DARK,
            edgecolor="none",
        )
    )
    ax.add_patch(
        FancyBboxPatch(
            (2, 5),
            60,
            57,
            boxstyle="round,pad=0,rounding_size=13",
            facecolor=GREEN,
            edgecolor="none",
        )
    )
    ax.add_patch(PathPatch(_letter_g(), facecolor=WHITE, edgecolor="none"))
    ax.add_patch(
        Polygon(
            BOLT,
            closed=True,
            facecolor=AMBER,
            edgecolor=AMBER_EDGE,
            linewidth=0.9,
            joinstyle="miter",
        )
    )


def render_png(path: Path, pixels: int) -> None:
    fig = Figure(figsize=(1, 1), dpi=pixels)
    FigureCanvasAgg(fig)
    fig.patch.set_alpha(0)
    draw(fig)
    fig.savefig(path, dpi=pixels, transparent=True, metadata={"Software": None})


def render_svg(path: Path) -> None:
    matplotlib.rcParams["svg.hashsalt"] = "greed"  # deterministic element ids
    fig = Figure(figsize=(SIZE / 72, SIZE / 72))  # 64 x 64 pt
    FigureCanvasAgg(fig)
    fig.patch.set_alpha(0)
    draw(fig)
    fig.savefig(path, format="svg", transparent=True, metadata={"Date": None, "Creator": None})


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "kernelspec"
    out.mkdir(parents=True, exist_ok=True)
    render_png(out / "logo-32x32.png", 32)
    render_png(out / "logo-64x64.png", 64)
    render_svg(out / "logo-svg.svg")
    for name in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
