"""Figures of each view (PNG and SVG) for papers and reports, drawn with matplotlib.

For each (view, layer) the newest frame in the selection is drawn, with the looks of the
dashboard and the ParaView scripts (blue-white-red for signed values); scalars and gradient
health are drawn as curves over all their steps. Files: ``<view>-<layer>.png|.svg``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convscope._optional import require
from convscope.export._files import layer_token
from convscope.export._scenes import tile_maps, weight_layout, window_origins
from convscope.export._select import choice, selected
from convscope.frames import Frame
from convscope.sinks._base import Sink

__all__ = ["FigureWriter", "FIGURE_KINDS"]

FIGURE_KINDS = ("scalar", "gradient_health", "weight_grid", "trajectory", "distribution", "feature_maps", "correlation", "groups")
_CMAP = "RdBu_r"  # blue-white-red, as ParaView's "Cool to Warm" and the dashboard


class FigureWriter(Sink):
    """Collects frames and draws one figure per view and layer when closed.

    Needs matplotlib (``pip install "convscope[export]"``).

    Example:
        >>> import tempfile
        >>> w = FigureWriter(tempfile.mkdtemp(), formats=("png",))
        >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
        >>> w.close()
        >>> [p.name for p in w.files]
        ['scalars.png']
    """

    name = "figures"

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        formats: Sequence[str] = ("png", "svg"),
        kinds: str | Iterable[str] | None = None,
        layers: str | Iterable[str] | None = None,
        dpi: int = 120,
    ) -> None:
        require("matplotlib", feature="figure export", extra="export")
        self.out = Path(out)
        self.formats = tuple(formats)
        self.kinds, self.layers = choice(kinds, layers)
        self.dpi = dpi
        self.latest: dict[tuple[str, str], Frame] = {}
        self.curves: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.files: list[Path] = []

    def write(self, frame: Frame) -> None:
        for f in selected(frame, self.kinds, self.layers):
            if f.kind in FIGURE_KINDS:
                self._add(f)

    def _add(self, frame: Frame) -> None:
        p = frame.payload
        if frame.kind == "scalar":
            self.curves.setdefault(("scalar", str(p["name"])), []).append((frame.step, float(p["value"])))
        elif frame.kind == "gradient_health":
            self.curves.setdefault(("grad_norm", frame.layer), []).append((frame.step, float(p["grad_norm"])))
        else:
            self.latest[(frame.kind, frame.layer)] = frame

    def close(self, *, status: str = "finished") -> None:
        self.render()

    def render(self) -> list[Path]:
        """Draw every figure now; return the files written."""
        mpl = require("matplotlib", feature="figure export", extra="export")
        mpl.use("Agg", force=False)
        import matplotlib.pyplot as plt

        self.out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for series, title, ylabel, name in (("scalar", "scalars", None, "scalars"),
                                            ("grad_norm", "gradient health", "gradient norm", "gradient_health")):
            curves = {k[1]: v for k, v in self.curves.items() if k[0] == series}
            if not curves:
                continue
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for label, pts in curves.items():
                s, v = zip(*pts, strict=True)
                ax.plot(s, v, label=label)
            ax.set_xlabel("step")
            if ylabel:
                ax.set_ylabel(ylabel)
            ax.legend()
            ax.set_title(title)
            written += self._save(fig, name)
        for (kind, layer), frame in self.latest.items():
            fig = _draw(plt, frame)
            written += self._save(fig, f"{kind}-{layer_token(layer)}")
        self.files = written
        return written

    def _save(self, fig: Any, stem: str) -> list[Path]:
        import matplotlib.pyplot as plt

        paths = []
        fig.tight_layout()
        for fmt in self.formats:
            path = self.out / f"{stem}.{fmt}"
            fig.savefig(path, dpi=self.dpi, metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
        plt.close(fig)
        return paths


def _draw(plt: Any, frame: Frame) -> Any:
    p, k, title = frame.payload, frame.kind, f"{frame.layer} {frame.kind.replace('_', ' ')}, step {frame.step}"
    if k == "trajectory":
        fig = plt.figure(figsize=(8, 4))
        ax = fig.add_subplot(1, 2, 1, projection="3d")
        pca = np.asarray(p.get("pca_path", np.asarray(p["pca"]).reshape(1, -1)), np.float32)
        pca = np.pad(pca, ((0, 0), (0, max(0, 3 - pca.shape[1]))), constant_values=np.nan)
        # a run with fewer than three axes (its first recordings, or just after a pruning) has
        # NaN in the others, which matplotlib would draw as no line at all: those axes are 0,
        # and points without any axis yet are left out
        pca = np.nan_to_num(pca[~np.isnan(pca).all(axis=1)], nan=0.0)
        ax.plot(pca[:, 0], pca[:, 1], pca[:, 2], marker=".")
        ax.set_title("PCA path")
        ax2 = fig.add_subplot(1, 2, 2)
        ev = np.nan_to_num(np.asarray(p["explained_variance"], np.float32).ravel(), nan=0.0)
        ax2.bar(range(len(ev)), ev)
        ax2.set_xticks(range(len(ev)), [f"PC {i + 1}" for i in range(len(ev))])
        ax2.set_title("explained variance")
        fig.suptitle(title)
        return fig
    fig, ax = plt.subplots(figsize=(7, 5))
    if k == "weight_grid":
        w = np.asarray(p["weights"], np.float32)
        f, c, kh, kw = weight_layout(w.shape)
        vmax = float(p["vmax"]) or 1.0
        image, rows, columns = _weight_image(w.reshape(f, c, kh, kw))
        im = ax.imshow(image, cmap=_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
        # ticks at the windows' middles, numbered by filter and channel (not by pixel)
        if c == 1 and f > 1:  # the filters wrapped into rows of `columns`
            positions, offsets = _window_ticks(columns, kw)
            ax.set_xticks(positions, [f"+{offset}" for offset in offsets])
            ax.set_yticks(*_window_ticks(rows, kh, first=columns))
            ax.set_xlabel("filter (the row's first + this)")
            ax.set_ylabel("filters (first of the row; 1 input channel)")
        else:
            ax.set_xticks(*_window_ticks(f, kw))
            ax.set_yticks(*_window_ticks(c, kh))
            ax.set_xlabel("filter")
            ax.set_ylabel("input channel")
    elif k == "distribution":
        im = ax.imshow(np.asarray(p["counts"], np.float32), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xlabel("bin (each filter's own min to max)")
        ax.set_ylabel("filter")
    elif k == "feature_maps":
        im = ax.imshow(tile_maps(np.asarray(p["images"])), cmap="gray", interpolation="nearest")
        ax.set_axis_off()
    elif k == "correlation":
        im = ax.imshow(np.asarray(p["matrix"], np.float32), cmap=_CMAP, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xlabel("filter")
        ax.set_ylabel("filter")
    else:  # groups
        labels = np.asarray(p["labels"])
        im = ax.imshow(labels[None, :], aspect="auto", cmap="tab20", interpolation="nearest")
        ax.set_yticks([])
        ax.set_xlabel("filter (colour = group, -1 = none)")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return fig


def _weight_image(w: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Weights ``[F, C, kh, kw]`` as one image of kernel windows with 1-pixel NaN gaps, and its
    size in windows, laid out as the dashboard and the VTK blocks are (:func:`window_origins`):
    channels down and filters across, or one input channel's filters wrapped into a near-square block."""
    f, c, kh, kw = w.shape
    window_row, window_col, rows, columns = window_origins(f, c)
    fi, ci, ri, ki = np.meshgrid(np.arange(f), np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    image = np.full((rows * (kh + 1) - 1, columns * (kw + 1) - 1), np.nan, np.float32)
    image[window_row[fi, ci] * (kh + 1) + ri, window_col[fi, ci] * (kw + 1) + ki] = w
    return image, rows, columns


def _window_ticks(count: int, size: int, *, most: int = 12, first: int = 1) -> tuple[list[float], list[str]]:
    """Tick positions and labels of ``count`` windows of ``size`` pixels and a 1-pixel gap
    (:func:`tile_maps`): every 1st, 2nd, 5th, 10th, 20th ... window, at most ``most`` ticks;
    window ``i`` is labelled ``i * first``."""
    step = next(m * 10**e for e in range(12) for m in (1, 2, 5) if count <= most * m * 10**e)
    shown = range(0, count, step)
    return [float(i * (size + 1) + (size - 1) / 2) for i in shown], [str(i * first) for i in shown]
