"""Example responses drawn token by token: each token in a box coloured by its entropy, positions
inside a high-window-entropy (HWE) span underlined.

The responses come from the run's token rows (the sample the Recorder kept): at the first, the
middle and the last recorded step that has token rows, the responses with the highest, the median
and the lowest mean entropy (fewer when long responses would not fit the page). Token text is
drawn in the monospace font through ``style.visible``
(newline ``⏎``, tab ``⇥``, characters the font lacks ``□``), mathtext off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from ..store.reader import Run
from .layout import Page, line_height
from .style import COLORS, SIZE, fit_width, fmt, text_width, visible

TOKEN_SIZE = 8.5   # points
BOX_H = 0.19       # inches
PITCH = 0.27       # inches between token lines
CMAP = "Blues"


@dataclass
class Example:
    """One response: where it comes from and its tokens (text, entropy, HWE mark)."""

    step: int
    rank: int
    sample_id: int
    why: str
    reward: float | None
    entropy_mean: float | None
    prompt: str | None
    tokens: list[tuple[str, float | None, bool]]


def pick_examples(run: Run, *, stages: int = 3, per_stage: int = 2) -> list[Example]:
    """Up to ``stages × per_stage`` responses: at the first, middle and last step with token
    rows, the highest-, median- and lowest-entropy response, in that order (lazy scans: only these
    rows are read, however many token rows the run has)."""
    if not run.parts("tokens"):
        return []
    tok = run.scan("tokens")
    steps = tok.select(pl.col("step").unique().sort()).collect()["step"].to_list()
    if not steps:
        return []
    chosen = sorted({steps[round(i * (len(steps) - 1) / max(stages - 1, 1))] for i in range(stages)})
    per_sample = (
        tok.filter(pl.col("step").is_in(chosen))
        .group_by("step", "rank", "sample_id")
        .agg(entropy_mean=pl.col("entropy").mean(), n=pl.len())
        .collect()
    )
    if run.parts("samples"):
        info = (run.scan("samples").filter(pl.col("step").is_in(chosen))
                .select("step", "rank", "sample_id", "reward", "prompt").collect())
        per_sample = per_sample.join(info, on=["step", "rank", "sample_id"], how="left")
    else:
        per_sample = per_sample.with_columns(reward=pl.lit(None, pl.Float64), prompt=pl.lit(None, pl.String))
    picks: list[tuple[dict, str]] = []
    for step in chosen:
        rows = per_sample.filter(pl.col("step") == step).sort("entropy_mean", "rank", "sample_id",
                                                               descending=[True, False, False], nulls_last=True)
        if rows.is_empty():
            continue
        order = [(0, "highest mean entropy"), (rows.height // 2, "median mean entropy"),
                 (rows.height - 1, "lowest mean entropy")][:per_stage]
        used = set()
        for i, why in order:
            if i in used:
                continue
            used.add(i)
            picks.append((rows.row(i, named=True), why))
    if not picks:
        return []
    keys = pl.DataFrame([{"step": r["step"], "rank": r["rank"], "sample_id": r["sample_id"]} for r, _ in picks],
                        schema={"step": pl.Int64, "rank": pl.Int32, "sample_id": pl.Int64})
    rows = (
        tok.filter(pl.col("step").is_in(chosen))
        .select("step", "rank", "sample_id", "pos", "token", "token_id", "entropy", "is_hwe")
        .collect()
        .join(keys, on=["step", "rank", "sample_id"], how="semi")
        .sort("step", "rank", "sample_id", "pos")
    )
    out = []
    for r, why in picks:
        own = rows.filter((pl.col("step") == r["step"]) & (pl.col("rank") == r["rank"])
                          & (pl.col("sample_id") == r["sample_id"]))
        tokens = [
            (t if t is not None else f"#{i}", e if e is not None and math.isfinite(e) else None, bool(h))
            for t, i, e, h in zip(own["token"].to_list(), own["token_id"].to_list(), own["entropy"].to_list(),
                                  own["is_hwe"].fill_null(False).to_list())
        ]
        out.append(Example(int(r["step"]), int(r["rank"]), int(r["sample_id"]), why, r.get("reward"),
                           r.get("entropy_mean"), r.get("prompt"), tokens))
    return out


def lines_needed(example: Example, width: float) -> int:
    """Token lines ``example`` takes at ``width`` inches."""
    lines, x = 1, 0.0
    for text, _, _ in example.tokens:
        w = min(text_width(token_label(text), TOKEN_SIZE, mono=True) + 0.06, width)
        if x + w > width:
            lines, x = lines + 1, 0.0
        x += w
    return lines


def fit_examples(examples: list[Example], width: float, height: float) -> list[Example]:
    """Fewer responses per step when long ones would not fit ``height`` inches: keep the
    highest-entropy and median response of each step, then only the highest-entropy one."""
    head = line_height(SIZE["small"]) + 0.04 + 0.1
    for keep in ("lowest", "median"):
        need = sum(head + min(lines_needed(e, width), 8) * PITCH for e in examples) + 0.6
        if need <= height:
            break
        examples = [e for e in examples if keep not in e.why]
    return examples


def token_label(text: str) -> str:
    """How a token's text is shown in its box (whitespace-only tokens as ``␣``)."""
    if text and not text.strip(" "):
        return "␣" * len(text)
    return visible(text, mono=True)


def draw_examples(page: Page, examples: list[Example], *, top: float, bottom: float) -> float:
    """Draw ``examples`` between ``top`` and ``bottom`` inches; returns the y where drawing ended.

    Each response gets a header line and as many token lines as fit (the rest is counted, not
    drawn); box colour is the token's entropy on one scale for the page (colour bar at the end).
    """
    values = [e for ex in examples for _, e, _ in ex.tokens if e is not None]
    vmax = max(0.7, float(np.quantile(values, 0.98))) if values else 1.0
    norm = Normalize(0.0, vmax)
    import matplotlib

    cmap = matplotlib.colormaps[CMAP]
    head_h = line_height(SIZE["small"]) + 0.04
    legend_h = 0.55
    avail = top - bottom - legend_h
    lines_each = int(max(1, min(8, (avail / max(len(examples), 1) - head_h - 0.08) // PITCH)))
    x0, x1 = page.left, page.right
    y = top
    rects, colors = [], []
    pad = 0.03
    for ex in examples:
        reward = f" · reward {fmt(ex.reward, '.3g')}" if ex.reward is not None else ""
        ent = f" · mean entropy {fmt(ex.entropy_mean, '.3f')} nats" if ex.entropy_mean is not None else ""
        prompt = f" · prompt: {visible(ex.prompt, limit=80)}" if ex.prompt else ""
        header = f"step {ex.step} · sample {ex.sample_id}" + (f" (rank {ex.rank})" if ex.rank else "") + \
            f" · {ex.why}{reward}{ent}{prompt}"
        page.text(x0, y, fit_width(header, x1 - x0, SIZE["small"]), size=SIZE["small"], color=COLORS["muted"])
        y -= head_h
        x, line = x0, 0
        drawn = 0
        for text, entropy, hwe in ex.tokens:
            label = token_label(text)
            w = text_width(label, TOKEN_SIZE, mono=True) + 2 * pad
            if w > x1 - x0:
                label = fit_width(label, x1 - x0 - 2 * pad, TOKEN_SIZE, mono=True)
                w = text_width(label, TOKEN_SIZE, mono=True) + 2 * pad
            if x + w > x1:
                line += 1
                if line >= lines_each:
                    break
                x = x0
            yy = y - line * PITCH
            face = cmap(norm(entropy)) if entropy is not None else (0.9, 0.9, 0.9, 1.0)
            rects.append(Rectangle((x, yy - BOX_H), w - 0.012, BOX_H))
            colors.append(face)
            dark = (0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2]) < 0.55
            page.text(x + pad, yy - BOX_H / 2, label, size=TOKEN_SIZE, mono=True, va="center_baseline",
                      color="white" if dark else COLORS["text"])
            if hwe:
                rects.append(Rectangle((x, yy - BOX_H - 0.045), w, 0.03))
                colors.append(COLORS["hwe"])
            x += w
            drawn += 1
        left = len(ex.tokens) - drawn
        if left:
            page.text(x1, y - line * PITCH - BOX_H - 0.02, f"… {left} more token(s) not shown", size=SIZE["tiny"],
                      color=COLORS["muted"], ha="right")
        if not ex.tokens:
            page.text(x0, y, "no token rows for this response", size=SIZE["small"], color=COLORS["missing"])
        y -= (min(line, lines_each - 1) + 1) * PITCH + 0.1
    page.fig.add_artist(PatchCollection(rects, facecolors=colors, edgecolors="none",
                                        transform=page.fig.dpi_scale_trans))
    y -= 0.05
    _legend(page, y, norm, cmap)
    return y - legend_h


def _legend(page: Page, y: float, norm: Normalize, cmap) -> None:
    """A horizontal colour bar of token entropy and the HWE mark's meaning."""
    x0, width, h = page.left, 3.0, 0.13
    n = 60
    rects = [Rectangle((x0 + width * i / n, y - h), width / n + 0.002, h) for i in range(n)]
    cols = [cmap(i / (n - 1)) for i in range(n)]
    page.fig.add_artist(PatchCollection(rects, facecolors=cols, edgecolors="none", transform=page.fig.dpi_scale_trans))
    for v in np.linspace(norm.vmin, norm.vmax, 5):
        page.text(x0 + width * (v - norm.vmin) / (norm.vmax - norm.vmin), y - h - 0.04, f"{v:.2g}",
                  size=SIZE["tiny"], ha="center", color=COLORS["muted"])
    page.text(x0 + width + 0.12, y - h / 2, "box colour: token entropy (nats)", size=SIZE["small"],
              va="center", color=COLORS["text"])
    hx = x0 + width + 2.7
    page.fig.add_artist(PatchCollection([Rectangle((hx, y - h / 2 - 0.015), 0.3, 0.03)], facecolors=[COLORS["hwe"]],
                                        edgecolors="none", transform=page.fig.dpi_scale_trans))
    page.text(hx + 0.4, y - h / 2, "underline: inside a high-window-entropy span (ARES, w = 4)",
              size=SIZE["small"], va="center")


__all__ = ["Example", "draw_examples", "fit_examples", "lines_needed", "pick_examples", "token_label"]
