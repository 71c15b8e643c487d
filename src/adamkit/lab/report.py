"""The race's pictures and report: loss curves (median and min–max band over seeds), each optimizer's path over
the loss contours for 2-D problems, the results table, and one self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .problems import get_problem


# ------------------------------------------------------------------------------------------- table
def table(problem: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table of one problem of ``race.json`` (the terminal and HTML show these)."""
    results = problem["results"]
    seeds = problem["seeds"]
    metric_names = list(dict.fromkeys(m for r in results for m in r["metrics"]))
    header = ["optimizer", "best lr" if any(r["tuned"] for r in results) else "lr", "final loss"]
    if seeds > 1:
        header.append(f"min–max over {seeds} seeds")
    header += [f"steps to loss ≤ {problem['target']:g}", "wall time (ms)"]
    header += [m.replace("_", " ") for m in metric_names]
    header.append("note")
    rows = []
    for r in results:
        row = [r["optimizer"], f"{r['lr']:.3g}", fmt(r["final_loss"])]
        if seeds > 1:
            row.append(f"{fmt(r['final_loss_min'])} – {fmt(r['final_loss_max'])}")
        row.append("—" if r["steps_to_target"] is None else f"{r['steps_to_target']:g}")
        row.append(f"{1e3 * r['wall_s']:.0f}")
        row += [fmt(r["metrics"][m]) if m in r["metrics"] else "—" for m in metric_names]
        notes = []
        if r["diverged"]:
            notes.append(f"diverged in {r['diverged']}/{seeds} runs" if seeds > 1 else "diverged")
        if seeds > 1 and r["steps_to_target"] is not None and r["reached_target"] < seeds:
            notes.append(f"target reached in {r['reached_target']}/{seeds} runs")
        row.append("; ".join(notes))
        rows.append(row)
    return header, rows


def fmt(x: float | None) -> str:
    """A loss or metric with 4 significant digits; ``inf``/None (a diverged run) as 'inf'."""
    if x is None or not math.isfinite(x):
        return "inf" if x is None or x > 0 else "-inf"
    return f"{x:.4g}"


# ------------------------------------------------------------------------------------------- plots
def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [cmap(order[i % 20]) for i in range(n)]


def _curves(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and a (seeds × points) array of losses, NaN after a run stopped."""
    runs = result["runs"]
    steps = max((r["loss_steps"] for r in runs), key=len)
    losses = np.full((len(runs), len(steps)), np.nan)
    for i, r in enumerate(runs):
        losses[i, : len(r["losses"])] = [np.nan if v is None else v for v in r["losses"]]
    return np.array(steps), losses


def smooth(losses: np.ndarray, window: int) -> np.ndarray:
    """A trailing rolling median over ``window`` points along the last axis (the first points use what exists)."""
    if window <= 1:
        return losses
    padded = np.concatenate([np.full(losses.shape[:-1] + (window - 1,), np.nan), losses], axis=-1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1)
    with _quiet_nan_warnings():
        return np.nanmedian(windows, axis=-1)


def plot_losses(problem: dict[str, Any], path: Path) -> Path:
    """Loss against steps for every optimizer: the median over seeds, a band from min to max.

    Long curves that oscillate (fixed-lr methods on a non-smooth loss such as the RMSE) are drawn faint at every
    point, with a rolling median over 1% of the steps on top.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    log = problem["log_scale"]
    window = 1
    lowest = math.inf  # the lowest point of any bold curve
    for result, color in zip(problem["results"], _colors(len(problem["results"]))):
        steps, losses = _curves(result)
        window = len(steps) // 100 if len(steps) >= 500 else 1
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            if log:
                losses = np.where(losses > 0, losses, np.nan)
            median = np.nanmedian(losses, axis=0)
            smoothed = smooth(losses, window)
            low, high = np.nanmin(smoothed, axis=0), np.nanmax(smoothed, axis=0)
        label = f"{result['optimizer']} (lr={result['lr']:.3g})"
        if window > 1:
            ax.plot(steps, median, color=color, lw=0.6, alpha=0.25)
        bold = np.nanmedian(smoothed, axis=0)
        ax.plot(steps, bold, color=color, lw=1.8, label=label)
        if np.isfinite(bold).any():
            lowest = min(lowest, float(np.nanmin(bold)))
        if losses.shape[0] > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
    ax.axhline(problem["target"], color="0.4", ls="--", lw=1, label=f"target {problem['target']:g}")
    if log:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=1e-2)
    _clip_y(ax, problem, log, lowest)
    seeds = problem["seeds"]
    notes = [f"median and min–max band over {seeds} seeds"] if seeds > 1 else []
    if window > 1:
        notes.append(f"bold: rolling median over {window} points, faint: every point")
    ax.set_title(f"{problem['name']}: {problem['description']}" + "".join(f"\n{n}" for n in notes), fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (" (log scale)" if log else " (symlog scale)"))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _clip_y(ax: Any, problem: dict[str, Any], log: bool, lowest: float = -math.inf) -> None:
    """Keep one optimizer from squashing everyone else: the axis spans the runs' starting losses at the top (a
    diverging run) and, on a log axis, the bold curves at the bottom (a single step that lands on an exact zero,
    as Lion's sign steps can, would otherwise stretch it over ten decades of faint spikes)."""
    firsts = [r["runs"][0]["losses"][0] for r in problem["results"] if r["runs"][0]["losses"]]
    firsts = [v for v in firsts if v is not None and math.isfinite(v)]
    if not firsts:
        return
    low, high = ax.get_ylim()
    if log and 0 < lowest < math.inf and low < lowest / 10:
        ax.set_ylim(lowest / 10, high)
        low = lowest / 10
    top = max(firsts)
    if log and high > 10 * top:
        ax.set_ylim(low, 10 * top)
    elif not log and high > abs(top) * 10 + 1:
        ax.set_ylim(low, abs(top) * 10 + 1)


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """NaN-aware reductions over all-NaN columns (a diverged run) warn; the NaN they return is what we want."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def plot_paths(problem: dict[str, Any], path: Path) -> Path:
    """Each optimizer's path (first seed) over the loss contours, one panel per optimizer."""
    import matplotlib.pyplot as plt

    surface = problem["surface"]
    f = get_problem(problem["spec"]).f
    (x0, x1), (y0, y1) = surface["bounds"]
    X, Y = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    Z = f(X, Y)
    if problem["log_scale"]:
        positive = Z[Z > 0]
        levels = np.logspace(np.log10(np.percentile(positive, 0.5)), np.log10(Z.max()), 20)
    else:
        levels = np.linspace(Z.min(), Z.max(), 21)
    results = problem["results"]
    cols = min(4, len(results))
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax, result in zip(axes.flat, results):
        ax.contour(X, Y, Z, levels=levels, colors="0.65", linewidths=0.6)
        xy = np.array(result["runs"][0]["path"], dtype=float)
        few = len(xy) <= 120
        ax.plot(xy[:, 0], xy[:, 1], "-", color="tab:red", lw=1.2, marker="o" if few else None, ms=2.5)
        ax.plot(*surface["start"], "o", color="black", ms=4)
        if surface["minimum"] is not None:
            ax.plot(*surface["minimum"], "+", color="black", ms=10, mew=1.5)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        final = fmt(result["runs"][0]["final_loss"])
        ax.set_title(f"{result['optimizer']} (lr={result['lr']:.3g}), loss {final}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{problem['name']}: {problem['description']}, {problem['steps']} steps", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_all(report: dict[str, Any], out: Path) -> list[dict[str, str]]:
    """Every PNG of the race under ``out``: ``[{"problem", "kind", "file", "caption"}]``."""
    import matplotlib

    matplotlib.use("Agg")
    plots = []
    for problem in report["problems"]:
        if not problem["results"]:
            continue
        name = problem["name"].replace(":", "_").replace("/", "_")
        file = plot_losses(problem, out / f"loss_{name}.png")
        plots.append({"problem": problem["name"], "kind": "loss", "file": file.name,
                      "caption": f"Loss curves: {problem['name']}"})  # fmt: skip
        if problem["surface"] is not None:
            file = plot_paths(problem, out / f"paths_{name}.png")
            plots.append({"problem": problem["name"], "kind": "paths", "file": file.name,
                          "caption": f"Optimizer paths over the loss contours: {problem['name']}"})  # fmt: skip
    return plots


# -------------------------------------------------------------------------------------------- html
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: 13px; }
"""

CHECK_IMAGES = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const shown = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.getElementById("rendered").textContent = `${shown} of ${images.length} plots rendered`;
});
"""


def write_html(report: dict[str, Any], plots: list[dict[str, str]], out: Path) -> Path:
    """``report.html``: settings, each problem's table and plots (PNG inlined as base64): no server, no files."""
    e = html.escape
    s = report["settings"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>adamkit race</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>adamkit race</h1>",
        f"<p class='note'>adamkit {e(s['adamkit'])} · convention {e(s['convention'])} · engine {e(s['engine'])}"
        f" · {'learning rates tuned on a log grid' if s['tune'] else 'default learning rates'}</p>",
    ]
    for problem in report["problems"]:
        parts.append(f"<h2>{e(problem['name'])}</h2>")
        parts.append(
            f"<p>{e(problem['description'])} · {problem['steps']} steps · {problem['seeds']} seed(s)</p>"
        )
        header, rows = table(problem)
        parts.append(f"<table class='results' data-problem='{e(problem['name'])}'><thead><tr>")
        parts.extend(f"<th>{e(h)}</th>" for h in header)
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        for skipped in problem["skipped"]:
            parts.append(f"<p class='note'>skipped {e(skipped['optimizer'])}: {e(skipped['reason'])}</p>")
        for plot in (p for p in plots if p["problem"] == problem["name"]):
            data = base64.b64encode((out.parent / plot["file"]).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{e(plot['caption'])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{e(plot['caption'])}</figcaption></figure>"
            )
    parts.append("<p id='rendered' class='note'></p>")
    parts.append(f"<script>{CHECK_IMAGES}</script></body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        return clean(value.item())
    return value


def write_all(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """``race.json``, the PNGs and ``report.html`` under ``out`` (which must exist)."""
    data = clean(report)
    plots = plot_all(data, out)
    data["plots"] = plots
    paths = {"json": out / "race.json", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    write_html(data, plots, paths["html"])
    return paths
