"""The dashboard's pages as Dash layouts: the list of runs, one run, a sweep; and a one-line error.

A page's URL is ``/`` (every run under the folders given), ``/run/<root>/<path>`` or
``/sweep/<root>/<path>`` (:mod:`.roots`); each page holds a ``dcc.Interval`` whose ticks re-read the
folders (:mod:`.app`), so a running search's new generations appear without reloading.

>>> page_path("/run/runs/digits")
('run', 'runs/digits')
>>> page_path("/elsewhere")
('missing', '/elsewhere')
"""

from __future__ import annotations

from typing import Any

from dash import dash_table, dcc, html

PAGES = ("run", "sweep")
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; }
.top { background: #1f3b57; color: white; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
.top a { color: white; text-decoration: none; font-weight: 600; }
.page { padding: 12px 24px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 12px; }
.card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 10px; background: white; }
.head { font-size: 15px; margin: 6px 0 12px 0; }
.status-running { color: #2ca02c; font-weight: 600; } .status-done { color: #1f77b4; font-weight: 600; }
.status-stopped { color: #8c564b; font-weight: 600; }
.error { color: #b00020; font-weight: 600; margin: 12px 0; }
.details { font-family: ui-monospace, Menlo, monospace; font-size: 12px; white-space: pre-wrap; }
h2 { font-size: 17px; margin: 8px 0; }
"""
TABLE = dict(style_cell={"fontFamily": "ui-monospace, Menlo, monospace", "fontSize": 12, "padding": "3px 8px",
                         "textAlign": "left", "maxWidth": 260, "overflow": "hidden", "textOverflow": "ellipsis"},
             style_header={"fontWeight": 600, "backgroundColor": "#f3f5f7"},
             style_table={"overflowX": "auto"})


def page_path(pathname: str | None) -> tuple[str, str]:
    """Which page a URL path is, and its folder key: ``("list", "")``, ``("run", key)``, ``("sweep", key)``."""
    path = pathname or "/"
    if path.strip("/") == "":
        return "list", ""
    kind, _, key = path.lstrip("/").partition("/")
    if kind in PAGES and key:
        return kind, key
    return "missing", path


def frame(content: Any, tick: str, interval_ms: int) -> html.Div:
    """Every page: the bar on top, the content, and the page's own live-update ticks (``tick``: its id)."""
    return html.Div([
        html.Div([dcc.Link("pbt_evo dashboard", href="/"), html.Span("runs, live from their folders")], className="top"),
        html.Div(content, className="page"),
        dcc.Interval(id=tick, interval=interval_ms),
    ])


def error_page(message: str) -> html.Div:
    """A page that cannot be shown: one line saying why (never a stack trace)."""
    return html.Div(message, className="error", id="page-error")


def list_page() -> list:
    return [
        html.H2("Runs"),
        html.Div(id="list-note", className="head"),
        dash_table.DataTable(id="run-list", columns=[
            {"name": "run", "id": "link", "presentation": "markdown"}, {"name": "folder", "id": "folder"},
            {"name": "algorithm", "id": "algorithm"}, {"name": "status", "id": "status"},
            {"name": "generation", "id": "generation"}, {"name": "epochs", "id": "epochs"},
            {"name": "best fitness", "id": "best", "type": "numeric", "format": {"specifier": ".4f"}},
            {"name": "last written", "id": "updated"}, {"name": "note", "id": "error"}],
            sort_action="native", page_size=50, markdown_options={"link_target": "_self"}, **TABLE),
        html.H2("Sweeps and studies (folders of runs)"),
        html.Div(id="sweep-list"),
    ]


def run_page(key: str) -> list:
    graph = {"config": {"displaylogo": False}}
    return [
        dcc.Store(id="run-key", data=key), dcc.Store(id="run-version"),
        html.Div(id="run-head", className="head"),
        html.Div([
            html.Div(dcc.Graph(id="fig-fitness", **graph), className="card"),
            html.Div(dcc.Graph(id="fig-origins", **graph), className="card"),
        ], className="grid"),
        html.Div([
            html.Div([dcc.Graph(id="fig-tree", **graph),
                      html.Div("Click a node: its genome and what it inherited.", id="tree-details",
                               className="details")], className="card"),
            html.Div(dcc.Graph(id="fig-schedules", **graph), className="card"),
        ], className="grid", style={"marginTop": "12px"}),
        html.H2("Population"),
        html.Div([html.Span("generation "), dcc.Dropdown(id="table-gen", value="latest", clearable=False, options=[{"label": "latest", "value": "latest"}],
                                                         style={"width": "160px", "display": "inline-block",
                                                                "verticalAlign": "middle"})]),
        dash_table.DataTable(id="population", sort_action="native", filter_action="native", page_size=20, **TABLE),
        html.Div([
            html.Div(dcc.Graph(id="fig-front", **graph), className="card"),
            html.Div([html.H2("Failures"), html.Div(id="failures-note"),
                      dash_table.DataTable(id="failures", page_size=10, columns=[
                          {"name": c, "id": c} for c in ("gen", "id", "epochs", "architecture")], **TABLE)],
                     className="card"),
        ], className="grid", style={"marginTop": "12px"}),
    ]


def sweep_page(key: str) -> list:
    return [
        dcc.Store(id="sweep-key", data=key),
        html.Div(id="sweep-head", className="head"),
        html.Div([html.Span("report "), dcc.Dropdown(id="sweep-report", value="best", clearable=False, options=[
            {"label": "best (best fitness ever seen)", "value": "best"},
            {"label": "final (best of the last generation)", "value": "final"},
            {"label": "hypervolume (multi-objective)", "value": "hypervolume"}],
            style={"width": "320px", "display": "inline-block", "verticalAlign": "middle"}),
            html.Span("  baseline "), dcc.Dropdown(id="sweep-baseline", clearable=False, style={
                "width": "220px", "display": "inline-block", "verticalAlign": "middle"})]),
        dcc.Markdown(id="sweep-table"),
        html.Div(id="sweep-note", className="details"),
        html.Div(dcc.Graph(id="fig-anytime", config={"displaylogo": False}), className="card"),
        html.H2("Runs"),
        dash_table.DataTable(id="sweep-runs", columns=[
            {"name": "run", "id": "link", "presentation": "markdown"}, {"name": "algorithm", "id": "algorithm"},
            {"name": "status", "id": "status"}, {"name": "epochs", "id": "epochs"},
            {"name": "best fitness", "id": "best", "type": "numeric", "format": {"specifier": ".4f"}},
            {"name": "note", "id": "error"}], sort_action="native", page_size=50,
            markdown_options={"link_target": "_self"}, **TABLE),
    ]
