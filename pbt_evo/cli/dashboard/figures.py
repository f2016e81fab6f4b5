"""The dashboard's Plotly figures, from :mod:`.views`' plain data (the same pictures as ``pbt_evo.plot``
draws into PNGs, interactive: hover for a member, zoom, click a family-tree node).

Figures are plain dicts in Plotly's JSON schema (``go.Figure`` validates every property in Python: a
second per page on a large run, for nothing). Large runs stay light: every member's fitness is one
WebGL polyline (10^5 points, numpy arrays that are sent as typed binary), layer origins name the
largest initial networks only, and hyperparameter schedules are a heatmap of how many members used
each option, not a line per member.

>>> fig = empty("no generation yet")
>>> fig["layout"]["annotations"][0]["text"]
'no generation yet'
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ...stats import RunSummary, anytime
from .views import RunView, best_schedule, fitness_lines, hyperparameters, origin_shares, schedule_counts

Figure = dict[str, Any]
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5")


def typed(a: np.ndarray) -> dict[str, str]:
    """A numpy array as Plotly's typed-array JSON (base64 of its bytes): 10^5 points in 0.5 MB, no text
    conversion (plotly.js reads ``{dtype, bdata}`` since 2.28).

    >>> typed(np.array([1.0, 2.0], np.float32))
    {'dtype': 'f4', 'bdata': 'AACAPwAAAEA='}
    """
    a = np.ascontiguousarray(a)
    code = {np.dtype(np.float32): "f4", np.dtype(np.float64): "f8", np.dtype(np.int32): "i4"}[a.dtype]
    return {"dtype": code, "bdata": base64.b64encode(a.tobytes()).decode()}


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def layout(title: str, height: int = 360, **extra: Any) -> dict[str, Any]:
    """The common layout; ``uirevision`` keeps a user's zoom across live updates."""
    return {"template": _template(), "title": {"text": title, "font": {"size": 14}, "x": 0.02, "y": 0.98,
                                               "yanchor": "top"}, "height": height,
            "margin": {"l": 60, "r": 20, "t": 60, "b": 50}, "modebar": {"orientation": "h"}, "legend": {"font": {"size": 10}}, "uirevision": "keep",
            **extra}


def empty(text: str) -> Figure:
    """A blank figure saying why it is blank."""
    return {"data": [], "layout": layout("", 220, xaxis={"visible": False}, yaxis={"visible": False}, annotations=[
        {"text": text, "showarrow": False, "font": {"size": 14, "color": "#666"}, "xref": "paper", "yref": "paper",
         "x": 0.5, "y": 0.5}])}


def fitness(view: RunView) -> Figure:
    """Every member's fitness over epochs (grey), the best and median of each generation on top (the log's
    lines alone for a search without a population file: BOHB, one-shot)."""
    x, y, ids = fitness_lines(view)
    log = view.run.log if view.run else []
    if not len(x) and not log:
        return empty("no generation trained yet")
    data = [{"type": "scattergl", "x": typed(x), "y": typed(y), "customdata": typed(ids), "mode": "lines+markers",
             "name": "each member", "line": {"color": "rgba(90,90,90,0.35)", "width": 1},
             "marker": {"size": 3, "color": "rgba(90,90,90,0.5)"},
             "hovertemplate": "member %{customdata}<br>epochs %{x}<br>fitness %{y:.4g}<extra></extra>"}] if len(x) else []
    for key, color, dash in (("best", "#d62728", "solid"), ("median", "#1f77b4", "dash")):
        data.append({"type": "scatter", "x": [r["epochs"] for r in log], "y": [r.get(key) for r in log], "name": key,
                     "mode": "lines", "line": {"color": color, "width": 2.5, "dash": dash}})
    ticks = whole_ticks([log[0]["epochs"], log[-1]["epochs"]] if log else [])
    return {"data": data, "layout": layout("Fitness of every member" if len(x) else "Fitness (the run's log)",
                                           xaxis={"title": {"text": "epochs per member"}, **ticks},
                                           yaxis={"title": {"text": "fitness"}})}


def origins(view: RunView) -> Figure:
    """The paper's Appendix A stack plot: share of the population's layers from each initial network."""
    epochs, labels, shares = origin_shares(view)
    if not epochs:
        return empty("no generation trained yet")
    data = []
    for k, label in enumerate(labels):
        color = {"new": "#dddddd", "other": "#999999"}.get(label, PALETTE[k % len(PALETTE)])
        data.append({"type": "scatter", "x": epochs, "y": shares[:, k], "name": label, "stackgroup": "one",
                     "mode": "lines", "line": {"width": 0.5, "color": color}, "fillcolor": color,
                     "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>"})
    return {"data": data, "layout": layout("Origin of the population's layers (initial network)",
                                           xaxis={"title": {"text": "epochs per member"}, **whole_ticks(epochs)},
                                           yaxis={"title": {"text": "share of layers"}, "range": [0, 1],
                                                  "tickformat": ".0%"})}


def schedules(view: RunView, member: int | None) -> Figure:
    """Each hyperparameter: how many members trained with each option per generation (shade), and the
    values ``member`` (the best) and its line of base parents trained with (red steps)."""
    names = hyperparameters(view.run.space) if view.run else []
    if not names:
        return empty("no hyperparameter variables in this run's space")
    data, axes, gap = [], {}, 0.1
    height = (1 - gap * (len(names) - 1)) / len(names)
    for k, name in enumerate(names):
        epochs, options, counts = schedule_counts(view, name)
        labels = [option_label(o) for o in options]
        suffix = "" if k == 0 else str(k + 1)
        top = 1 - k * (height + gap)
        data.append({"type": "heatmap", "x": epochs, "y": labels, "z": counts, "colorscale": [[0, "#ffffff"], [1, "#4d4d4d"]],
                     "showscale": False,
                     "xaxis": "x", "yaxis": f"y{suffix}",
                     "hovertemplate": f"{name}=%{{y}}<br>epochs %{{x}}<br>%{{z}} members<extra></extra>"})
        if member is not None:
            steps = best_schedule(view, member, name)
            data.append({"type": "scatter", "x": [e for e, _ in steps], "y": [option_label(v) for _, v in steps],
                         "mode": "lines+markers", "line": {"color": "#d62728", "width": 2.5, "shape": "vh"},
                         "name": f"member {member}", "showlegend": k == 0, "xaxis": "x", "yaxis": f"y{suffix}"})
        axes[f"yaxis{suffix}"] = {"domain": [max(top - height, 0), top], "type": "category", "categoryorder": "array",
                                  "categoryarray": labels, "title": {"text": name, "font": {"size": 11}}}
    return {"data": data, "layout": layout(f"Hyperparameters: members per option; red: member {member}'s line",
                                           140 + 230 * len(names), xaxis={"title": {"text": "epochs per member"}},
                                           **axes)}


def tree(data: Mapping[str, Any], selected: int | None = None) -> Figure:
    """The family tree (:func:`.views.tree`): generations left to right, an edge from each child to its
    base parent (solid) and donor (dotted); click a node for its genome and what it inherited."""
    nodes = data["nodes"]
    if not nodes:
        return empty("no family tree yet")
    lines: dict[int, tuple[list, list]] = {0: ([], []), 1: ([], [])}
    for child, parent, k in data["edges"]:
        xs, ys = lines[min(k, 1)]
        xs += [nodes[child]["x"], nodes[parent]["x"], None]
        ys += [nodes[child]["y"], nodes[parent]["y"], None]
    kind_of_trace = "scattergl" if len(nodes) > 1000 else "scatter"
    labelled = len(nodes) <= 40
    traces = [{"type": kind_of_trace, "x": lines[k][0], "y": lines[k][1], "mode": "lines", "name": name,
               "hoverinfo": "skip", "line": {"color": color, "width": 1, "dash": style}}
              for k, (name, color, style) in enumerate((("base parent", "#888", "solid"), ("donor", "#bbb", "dot")))]
    member = data["member"]
    kinds = (("ancestor", "#1f77b4", 10), ("initial network", "#2ca02c", 10), ("earlier ancestors cut off", "#bbb", 7),
             (f"member {member}", "#d62728", 16), ("selected", "#ff7f0e", 13))

    def kind(n: Mapping[str, Any]) -> int:
        if n["id"] == member:
            return 3
        if n["id"] == selected:
            return 4
        return 2 if n.get("cut") else 1 if n["lineage"] is None else 0

    for k, (name, color, size) in enumerate(kinds):
        mine = [n for n in nodes.values() if kind(n) == k]
        if mine:
            traces.append({"type": kind_of_trace, "x": [n["x"] for n in mine], "y": [n["y"] for n in mine],
                           "customdata": [n["id"] for n in mine], "name": name,
                           "mode": "markers+text" if labelled else "markers", "text": [str(n["id"]) for n in mine],
                           "textposition": "top center", "textfont": {"size": 10},
                           "marker": {"size": size, "color": color, "line": {"width": 1, "color": "white"}},
                           "hovertext": [_node_text(n) for n in mine], "hovertemplate": "%{hovertext}<extra></extra>"})
    cut = f"; those made before generation {data['cutoff'] + 1} not shown" if data.get("cutoff") else ""
    count = data.get("ancestors", 0)
    axis = f"made after generation ({count} ancestor{'s' * (count != 1)}{cut})"
    return {"data": traces, "layout": layout(f"Family tree of member {member}", 420, clickmode="event",
                                             xaxis={"title": {"text": axis, "font": {"size": 11}},
                                                    **whole_ticks([n["x"] for n in nodes.values()])},
                                             yaxis={"visible": False})}


def whole_ticks(values: Sequence[float]) -> dict[str, Any]:
    """A tick at every whole number on a short axis of generations or epochs (none at 1.5).

    >>> whole_ticks([0, 3]), whole_ticks([0, 200])
    ({'dtick': 1}, {})
    """
    return {"dtick": 1} if values and max(values) - min(values) <= 12 else {}


def option_label(value: Any) -> str:
    """An option as an axis label: floats to 4 significant digits.

    >>> option_label(0.00316227766), option_label("relu"), option_label(64)
    ('0.003162', 'relu', '64')
    """
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _node_text(n: Mapping[str, Any]) -> str:
    if n["lineage"] is not None:
        how = f"parents {' + '.join(map(str, n['parents']))}"
    else:
        how = "earlier ancestor" if n.get("cut") else "initial network"
    return f"member {n['id']}<br>made after gen {n['gen']}<br>{how}" if n["gen"] else f"member {n['id']}<br>{how}"


def front(view: RunView) -> Figure:
    """A multi-objective run's Pareto front: every trained member (grey), the front after some earlier
    generations (lighter, older), the last one black; objective 1 (y) against objective 2 (x)."""
    rows = view.run.front if view.run else []
    if not rows:
        return empty("not a multi-objective run (no front.jsonl)")
    names = rows[-1].get("objectives") or ["objective 1", "objective 2"]
    values = [r["values"][:2] for g in sorted(view.gens) for r in view.gens[g]
              if r.get("values") and None not in r["values"][:2]]
    data = []
    if values:
        v = np.array(values, float)
        data.append({"type": "scattergl", "x": v[:, 1], "y": v[:, 0], "mode": "markers", "name": "trained members",
                     "marker": {"size": 4, "color": "rgba(150,150,150,0.5)"}})
    shown = sorted(set(list(range(0, len(rows), max(1, len(rows) // 8)))[-8:] + [len(rows) - 1]))
    for k, i in enumerate(shown):
        r, last = rows[i], i == len(rows) - 1
        pts = sorted((m["values"][1], m["values"][0]) for m in r["members"])
        hv = r.get("hypervolume")
        data.append({"type": "scatter", "x": [p[0] for p in pts], "y": [p[1] for p in pts], "mode": "lines+markers",
                     "name": f"front after gen {r['gen']}" + (f" (hypervolume {hv:.4g})" if last and hv is not None else ""),
                     "line": {"shape": "hv", "width": 2.5 if last else 1,
                              "color": "black" if last else f"rgba(31,119,180,{0.2 + 0.08 * k:.2f})"}})
    return {"data": data, "layout": layout("Pareto front over time", xaxis={"title": {"text": names[1] if len(names) > 1
                                                                                      else ""}},
                                           yaxis={"title": {"text": names[0]}})}


def anytime_figure(runs: Sequence[RunSummary], curve: str = "best_so_far",
                   ylabel: str = "best fitness so far") -> Figure:
    """A sweep's anytime plot (:func:`pbt_evo.stats.anytime`): mean +- std per algorithm, a panel per task."""
    tasks = list(dict.fromkeys(r.task for r in runs))
    if not tasks:
        return empty("no runs with a finished generation")
    data, axes, colors, gap = [], {}, {}, 0.06
    width = (1 - gap * (len(tasks) - 1)) / len(tasks)
    for col, task in enumerate(tasks):
        suffix = "" if col == 0 else str(col + 1)
        for alg, (grid, mean, std) in anytime([r for r in runs if r.task == task], curve).items():
            color = colors.setdefault(alg, PALETTE[len(colors) % len(PALETTE)])
            n = sum(r.algorithm == alg and r.task == task for r in runs)
            data.append({"type": "scatter", "x": np.concatenate([grid, grid[::-1]]),
                         "y": np.concatenate([mean + std, (mean - std)[::-1]]), "fill": "toself",
                         "fillcolor": _rgba(color, 0.15), "line": {"width": 0}, "hoverinfo": "skip",
                         "showlegend": False, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
            data.append({"type": "scatter", "x": grid, "y": mean, "mode": "lines", "name": f"{alg} (n={n})",
                         "line": {"color": color, "width": 2}, "legendgroup": alg, "showlegend": col == 0,
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
        left = col * (width + gap)
        axes[f"xaxis{suffix}"] = {"domain": [left, left + width], "anchor": f"y{suffix}",
                                  "title": {"text": "epochs per member"}}
        axes[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "title": {"text": ylabel if col == 0 else ""}}
    titles = [{"text": t if len(t) < 60 else t[:57] + "...", "showarrow": False, "xref": "paper", "yref": "paper",
               "x": col * (width + gap) + width / 2, "y": 1.0, "yanchor": "bottom", "font": {"size": 10}}
              for col, t in enumerate(tasks)]
    return {"data": data, "layout": layout("Anytime performance (mean +- std over seeds)", 420, annotations=titles,
                                           **axes)}


def _rgba(hex_color: str, alpha: float) -> str:
    """``#1f77b4`` -> ``rgba(31,119,180,0.15)``.

    >>> _rgba("#1f77b4", 0.15)
    'rgba(31,119,180,0.15)'
    """
    r, g, b = (int(hex_color[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
