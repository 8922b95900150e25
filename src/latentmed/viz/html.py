"""One self-contained HTML report (Jinja2 template ``templates/report.html``): images as data URIs, no network.

The page is built from plain data, so any layer can fill it: :class:`Viewer` (one image with a
grade slider that swaps its counterfactual and difference map), :class:`Table`, :class:`Figure`,
grouped in :class:`Section`\\ s, and :class:`RunInfo` (commands, versions, seed, time) in a collapsed
``<details>``. The slider is a native ``<input type="range">`` (arrow keys move it); a small inline
script shows the chosen frame. A Content-Security-Policy meta tag forbids every fetch but ``data:``
images, so the file opens from disk without reaching anything.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import os
import platform
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.errors import expect
from latentmed.io import write_text
from latentmed.viz.counterfactual import signed_difference
from latentmed.viz.grid import to_uint8

#: Displayed width of a viewer's images in CSS pixels (small images are enlarged, pixelated).
IMAGE_WIDTH = 192


@dataclasses.dataclass
class Viewer:
    """One image with its counterfactuals: ``images[k]`` is shown when the slider sits at ``labels[k]``.

    ``original``, ``reconstruction``: ``[C, H, W]`` in [-1, 1]; ``images``: ``[G, C, H, W]``. The
    difference maps (counterfactual - reconstruction, red where intensity appears, blue where it
    goes) share one symmetric scale per viewer, as in the PNG strips (:mod:`latentmed.viz.counterfactual`).
    ``readings[k]``: text lines under frame ``k`` (e.g. the grader's and the oracle's grade);
    ``notes``: lines under the input; ``start``: the frame shown first.
    """

    name: str
    original: np.ndarray
    reconstruction: np.ndarray
    images: np.ndarray
    labels: list[str]
    readings: list[list[str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    start: int = 0

    def __post_init__(self):
        n = len(self.images)
        expect(n >= 1 and len(self.labels) == n, f"viewer {self.name!r}: {n} images for {len(self.labels)} labels.")
        expect(not self.readings or len(self.readings) == n,
               f"viewer {self.name!r}: {len(self.readings)} reading lists for {n} images.")
        expect(0 <= self.start < n, f"viewer {self.name!r}: start {self.start} is not a frame index (0..{n - 1}).")


@dataclasses.dataclass
class Table:
    """A table of already formatted cells; rows whose index is in ``reference`` are marked as reference rows."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    reference: set[int] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Figure:
    """A PNG (file path or bytes) with a caption."""

    png: str | os.PathLike | bytes
    caption: str = ""


@dataclasses.dataclass
class Section:
    """A titled part of the page: text paragraphs, then viewers, tables and figures."""

    title: str
    text: list[str] = dataclasses.field(default_factory=list)
    viewers: list[Viewer] = dataclasses.field(default_factory=list)
    tables: list[Table] = dataclasses.field(default_factory=list)
    figures: list[Figure] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunInfo:
    """What was run: shell commands that redo it, the seed, and facts (versions, time, timings, ...)."""

    commands: list[str] = dataclasses.field(default_factory=list)
    facts: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def collect(cls, commands: Sequence[str] = (), seed: int | None = None, **facts) -> "RunInfo":
        """Commands and facts plus the seed, the UTC time and the versions of Python, latentmed, torch, numpy."""
        from importlib.metadata import PackageNotFoundError, version

        def ver(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        base = {"seed": "" if seed is None else str(seed),
                "written (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                "versions": f"Python {platform.python_version()}, latentmed {ver('latentmed')}, torch {ver('torch')}, "
                            f"numpy {ver('numpy')}",
                "platform": platform.platform()}
        return cls(list(commands), {k: v for k, v in {**base, **{k: str(v) for k, v in facts.items()}}.items() if v})


def png_data_uri(png: str | os.PathLike | bytes) -> str:
    """``data:image/png;base64,...`` from PNG bytes or a PNG file."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    expect(data[:8] == b"\x89PNG\r\n\x1a\n", f"{png if not isinstance(png, bytes) else 'bytes'}: not a PNG file.")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _image_uri(image: np.ndarray) -> str:
    """``[C, H, W]`` in [-1, 1] -> PNG data URI."""
    return png_data_uri(_png(to_uint8(image)[0]))


def _difference_uri(diff: np.ndarray, vmax: float) -> str:
    """Signed ``[H, W]`` map on the ``bwr`` colour map over ``[-vmax, vmax]`` -> PNG data URI."""
    import matplotlib

    rgba = matplotlib.colormaps["bwr"](np.clip(0.5 + diff / (2 * vmax), 0.0, 1.0))
    return png_data_uri(_png((rgba[..., :3] * 255).round().astype(np.uint8)))


def _viewer_context(v: Viewer, index: int) -> dict:
    diffs = [signed_difference(img, v.reconstruction) for img in v.images]
    vmax = max(1e-6, max(float(np.abs(d).max()) for d in diffs))
    readings = v.readings or [[] for _ in v.labels]
    frames = [{"label": lab, "image": _image_uri(img), "diff": _difference_uri(d, vmax), "readings": r}
              for lab, img, d, r in zip(v.labels, v.images, diffs, readings)]
    return {"id": f"viewer{index}", "name": v.name, "original": _image_uri(v.original),
            "reconstruction": _image_uri(v.reconstruction), "frames": frames, "notes": v.notes, "start": v.start,
            "vmax": f"{vmax:.3g}", "pixelated": max(v.original.shape[-2:]) < IMAGE_WIDTH}


def render_html_report(title: str, sections: Sequence[Section], run: RunInfo | None = None,
                  intro: Sequence[str] = ()) -> str:
    """The HTML text of a report (see the module docstring)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("latentmed.viz", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    counter = iter(range(10**9))
    context = [{"title": s.title, "text": s.text, "viewers": [_viewer_context(v, next(counter)) for v in s.viewers],
                "tables": s.tables, "figures": [{"src": png_data_uri(f.png), "caption": f.caption} for f in s.figures]}
               for s in sections]
    return env.get_template("report.html").render(title=title, intro=list(intro), sections=context, run=run,
                                                  image_width=IMAGE_WIDTH)


def write_html_report(path: str | os.PathLike, title: str, sections: Sequence[Section], run: RunInfo | None = None,
                 intro: Sequence[str] = ()) -> Path:
    """Write :func:`render_html_report` to ``path`` atomically."""
    return write_text(path, render_html_report(title, sections, run, intro))
