"""The dashboard's Dash app: routing, and the callbacks that read the folders and fill the pages.

Each page's ``dcc.Interval`` ticks (every ``interval`` ms) call a cheap callback that re-reads its
folder (a ``stat`` per file when nothing changed, the appended bytes when a generation was written)
and stores the run's version; the figures and tables are recomputed only when that version changes.
Every callback turns a failure into one line on the page (the traceback, for a bug, goes to the
server's log), and resolves its folder through :class:`.roots.Roots`, refusing any path outside the
folders the server was given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from ...stats import CompareError
from ..runread import RunReadError
from . import figures, pages, sweeps, views
from .catalog import Catalog

log = logging.getLogger("pbt_evo.dashboard")
RUN_FIGURES = ("fig-fitness", "fig-origins", "fig-schedules", "fig-tree", "fig-front")


def one_line(exc: BaseException) -> str:
    """What the page says about a failure: the reader's own line, else the exception's first line.

    >>> one_line(RunReadError("runs/x is not a pbt_evo run folder (no config.yaml)"))
    'runs/x is not a pbt_evo run folder (no config.yaml)'
    >>> one_line(KeyError("origin"))
    "cannot show this folder: KeyError: 'origin' (written by another program or another pbt_evo version?)"
    """
    if isinstance(exc, (RunReadError, CompareError)):
        return str(exc).splitlines()[0]
    text = (str(exc).splitlines() or [""])[0][:300]
    return f"cannot show this folder: {type(exc).__name__}: {text} (written by another program or another pbt_evo version?)"


def guarded(fallback: Callable[[str], Any]) -> Callable:
    """Run a callback; on any failure return ``fallback(one line)`` instead (logged with its traceback)."""
    def wrap(fn: Callable) -> Callable:
        def call(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as exc:  # the page shows one line, whatever went wrong
                if not isinstance(exc, (RunReadError, CompareError)):
                    log.exception("dashboard callback %s failed", fn.__name__)
                return fallback(one_line(exc))
        call.__name__ = fn.__name__
        return call
    return wrap


def create_app(catalog: Catalog, interval_ms: int = 2000) -> Dash:
    """The app serving ``catalog``'s folders; its scripts and styles all come from the installed packages."""
    app = Dash(__name__, title="pbt_evo dashboard", update_title=None, suppress_callback_exceptions=True,
               serve_locally=True)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + pages.CSS + "</style>")
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="content")])

    @app.callback(Output("content", "children"), Input("url", "pathname"))
    @guarded(lambda msg: pages.frame(pages.error_page(msg), "none-tick", interval_ms))
    def route(pathname: str | None) -> Any:
        kind, key = pages.page_path(pathname)
        if kind == "list":
            return pages.frame(pages.list_page(), "list-tick", interval_ms)
        if kind == "missing":
            return pages.frame(pages.error_page(f"no page at {key}: pages are /, /run/<folder>, /sweep/<folder>"),
                               "none-tick", interval_ms)
        catalog.roots.resolve(key)  # refused here if outside the folders given
        page = pages.run_page(key) if kind == "run" else pages.sweep_page(key)
        return pages.frame(page, f"{kind}-tick", interval_ms)

    @app.callback(Output("run-list", "data"), Output("sweep-list", "children"), Output("list-note", "children"),
                  Input("list-tick", "n_intervals"))
    @guarded(lambda msg: ([], [], html.Div(msg, className="error")))
    def run_list(_: Any) -> Any:
        rows = catalog.summaries()
        for r in rows:
            r["link"] = f"[{r['run']}](/run/{r['key']})"
        groups = catalog.roots.groups()
        sweep_links = [html.Div(dcc.Link(f"{catalog.roots.key(folder)} ({len(runs)} runs)",
                                         href=f"/sweep/{catalog.roots.key(folder)}")) for folder, runs in groups.items()]
        roots = ", ".join(str(p) for p in catalog.roots.folders.values())
        note = f"{len(rows)} run folder{'s' * (len(rows) != 1)} under {roots}"
        return rows, sweep_links or html.Div("none"), note

    # -- one run ----------------------------------------------------------------------------------------
    @app.callback(Output("run-head", "children"), Output("run-version", "data"), Input("run-tick", "n_intervals"),
                  State("run-key", "data"), State("run-version", "data"))
    @guarded(lambda msg: (html.Div(msg, className="error", id="run-error"), "error: " + msg))
    def run_head(_: Any, key: str, version: str | None) -> Any:
        head, new = catalog.view(key, lambda view: (header(view), repr(view.run.version)))
        return head, no_update if new == version else new

    @app.callback(*(Output(f, "figure") for f in RUN_FIGURES), Output("failures", "data"),
                  Output("failures-note", "children"), Output("table-gen", "options"),
                  Input("run-version", "data"), State("run-key", "data"))
    @guarded(lambda msg: (*(figures.empty(msg) for _ in RUN_FIGURES), [], msg, []))
    def run_figures(version: str | None, key: str) -> Any:
        if not version or version.startswith("error"):
            return (*(no_update for _ in RUN_FIGURES), no_update, no_update, no_update)
        return catalog.view(key, run_content)

    @app.callback(Output("population", "columns"), Output("population", "data"), Input("run-version", "data"),
                  Input("table-gen", "value"), State("run-key", "data"))
    @guarded(lambda msg: ([{"name": "error", "id": "error"}], [{"error": msg}]))
    def population(version: str | None, gen: Any, key: str) -> Any:
        if not version or version.startswith("error"):
            return no_update, no_update
        columns, rows = catalog.view(key, lambda view: views.population_table(view, None if gen == "latest" else gen))
        kinds = {"id": {"type": "numeric"}, "epochs": {"type": "numeric"},
                 "fitness": {"type": "numeric", "format": {"specifier": ".4f"}}}
        return [{"name": c, "id": c, **kinds.get(c, {})} for c in columns], rows

    @app.callback(Output("tree-details", "children"), Input("fig-tree", "clickData"), State("run-key", "data"))
    @guarded(lambda msg: msg)
    def tree_click(click: dict | None, key: str) -> Any:
        points = (click or {}).get("points") or []
        if not points or points[0].get("customdata") is None:
            return no_update
        member = int(points[0]["customdata"])
        return details_text(catalog.view(key, lambda view: views.member_details(view, member)))

    # -- a sweep ----------------------------------------------------------------------------------------
    @app.callback(Output("sweep-head", "children"), Output("sweep-table", "children"), Output("sweep-note", "children"),
                  Output("fig-anytime", "figure"), Output("sweep-runs", "data"), Output("sweep-baseline", "options"),
                  Output("sweep-baseline", "value"), Input("sweep-tick", "n_intervals"), Input("sweep-report", "value"),
                  Input("sweep-baseline", "value"), State("sweep-key", "data"))
    @guarded(lambda msg: (html.Div(msg, className="error"), "", "", figures.empty(msg), [], [], None))
    def sweep(_: Any, report: str, baseline: str | None, key: str) -> Any:
        folder = catalog.roots.resolve(key)
        paths = [p for p in catalog.roots.runs() if p.parent == folder]
        if not paths:
            raise RunReadError(f"{key} holds no run folders")
        rows = catalog.summaries(paths)
        for r in rows:
            r["link"] = f"[{r['run']}](/run/{r['key']})"
        readable = {r["key"] for r in rows if r["status"] != "unreadable"}
        versions = tuple((str(p), repr(catalog.summary_run(p).version)) for p in paths
                         if catalog.roots.key(p) in readable)
        head, md, note, fig, labels = compare_cached(versions, report, baseline)
        base = sweeps.baseline_of(labels, baseline)
        return head, md, note, fig, rows, [{"label": a, "value": a} for a in labels], base

    return app


@lru_cache(maxsize=16)
def compare_cached(versions: tuple, report: str, baseline: str | None) -> tuple:
    """The sweep's table, notes and anytime figure for these runs as they are (their versions)."""
    from pathlib import Path

    runs, notes = sweeps.summaries([Path(p) for p, _ in versions], report)
    labels = list(dict.fromkeys(r.algorithm for r in runs))
    base = sweeps.baseline_of(labels, baseline)
    try:
        md = sweeps.table(runs, report, base)
    except CompareError as exc:
        md, notes = "", [f"no comparison table: {exc}", *notes]
    curve = ("hypervolumes", "hypervolume of the front") if report == sweeps.HYPERVOLUME else ("best_so_far",
                                                                                                "best fitness so far")
    fig = figures.anytime_figure(runs, *curve)
    head = f"{len(runs)} runs of {len(labels)} algorithm{'s' * (len(labels) != 1)}: {', '.join(labels)}"
    return head, md, "\n".join(notes), fig, labels


def header(view: views.RunView) -> html.Div:
    """The run page's first line: name, algorithm, status, generation, epochs, best fitness, population."""
    run = view.run
    alg = run.config.get("algorithm", {})
    best = run.best_fitness
    parts = [html.B(run.name), f" · {alg.get('name', '?')} · ",
             html.Span(run.status, className=f"status-{run.status}", id="run-status"),
             f" · generation {run.generation} · epochs {run.epochs}/{run.e_total} · best fitness "
             f"{'n/a' if best is None else f'{best:.4f}'} · population {alg.get('population', '?')}"
             f" · {len(view.run.population)} member records"]
    return html.Div(parts, id="run-summary")


def run_content(view: views.RunView) -> tuple:
    """The run page's figures, failures and generation choices, from one up-to-date view."""
    best = views.best_id(view)
    tree = figures.tree(views.tree(view, best)) if best is not None else figures.empty("no member yet")
    failed = views.failures(view)
    total = sum(int(r.get("failed") or 0) for r in view.run.log)
    note = (f"{total} failed trainings over the run (log.jsonl); {len(failed)} member records without a fitness"
            + (" (the last 500 below)" if len(failed) > 500 else ""))
    gens = [{"label": "latest", "value": "latest"}] + [{"label": str(g), "value": g} for g in sorted(view.gens, reverse=True)]
    return (figures.fitness(view), figures.origins(view), figures.schedules(view, best), tree, figures.front(view),
            failed[-500:], note, gens)


def details_text(d: dict[str, Any]) -> str:
    """A clicked member, as lines: how it was made (its parents), what changed, its layers' origins,
    its architecture and its fitness history.

    >>> print(details_text({"id": 9, "how": "made after generation 2: a copy of member 5", "parents": [5],
    ...                     "changes": {"lr": [0.1, 0.2]}, "arch": {"lr": 0.2}, "fitness": [(3, 6, 0.5)]}))
    member 9: made after generation 2: a copy of member 5
    parents: 5
    changed: lr 0.1 -> 0.2
    architecture: lr=0.2
    fitness: gen 3 (6 epochs) 0.5
    """
    lines = [f"member {d['id']}: {d['how']}"]
    if d.get("parents"):
        roles = ("base", "donor")
        named = [f"{p} ({roles[k]})" if len(set(d["parents"])) > 1 else str(p)
                 for k, p in enumerate(dict.fromkeys(d["parents"]))]
        lines.append("parents: " + ", ".join(named))
    if "changes" in d:
        lines.append("changed: " + ("; ".join(f"{k} {a} -> {b}" for k, (a, b) in d["changes"].items()) or "nothing"))
    if d.get("origin"):
        lines.append("layers from initial networks: " + ", ".join(f"{k}={v}" for k, v in d["origin"].items()))
    lines.append("architecture: " + ", ".join(f"{k}={v}" for k, v in d["arch"].items()))
    history = d.get("fitness") or []
    if history:
        shown = history[-6:]
        lines.append("fitness: " + "; ".join(f"gen {g} ({e} epochs) {'failed' if f is None else f'{f:.4g}'}"
                                             for g, e, f in shown))
    return "\n".join(lines)
