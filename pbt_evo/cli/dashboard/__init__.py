"""``python -m pbt_evo.dashboard runs/``: a live view of run folders in the browser (read-only).

Give it one run folder, a sweep's folder, or a folder of runs (several of them, too). It serves, on
127.0.0.1 (``--port``, default 8050; ``--host 0.0.0.0`` only when asked, with a warning), a list of
the runs (status, generation, best fitness, algorithm), a page per run (every member's fitness over
epochs, the population table, the final best member's family tree, layer origins, hyperparameter
schedules, the Pareto front, failures) and a page per sweep (``compare``'s table and anytime plot).
Pages follow running folders: every ``--interval`` seconds they read what was appended.

Built on Dash (Plotly's framework for data apps in Python) because it is made for exactly this and is
well kept (Plotly releases it monthly): pages and callbacks are plain Python over HTTP, so the server
is a thread-safe function of the folders and the benchmark times its callbacks as a browser calls
them; ``dcc.Interval`` polling gives the live view, Plotly graphs give hover, zoom, click events and
WebGL for 10^5 points, ``DataTable`` sorts and filters; and every script and style it serves comes
from the installed wheels (``serve_locally``), so it works offline and asks no CDN for anything.
Panel/Bokeh would do too, with a websocket server whose state is harder to test from outside.

Modules: :mod:`.roots` (the folders given; paths outside them refused), :mod:`.catalog` (readers kept
between requests), :mod:`.views` (run records -> plain data), :mod:`.figures` (Plotly), :mod:`.sweeps`
(``compare`` on a live sweep), :mod:`.pages` (layouts), :mod:`.app` (callbacks), :mod:`.probe` (a
server process for tests and the benchmark). Everything reads through :mod:`pbt_evo.cli.runread`:
nothing a folder names is ever built or run.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
import threading
from typing import Any

LOOPBACK = "127.0.0.1"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.dashboard", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="run folders, a sweep's folder, or folders of runs")
    p.add_argument("--port", type=int, default=8050, help="port to serve on (default 8050)")
    p.add_argument("--host", default=LOOPBACK, help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between re-reads of the folders (default 2)")
    p.add_argument("--keep", type=int, default=2, help="run pages kept in memory (default 2; ~0.6 GB each for"
                                                       " 512 members x 200 generations)")
    p.add_argument("--warm", type=int, help="runs read as soon as the server starts, the most recently written"
                                            " first (default: --keep; 0: none)")
    return p.parse_args(argv)


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> _loopback("127.0.0.1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        import dash  # noqa: F401
    except ImportError:
        print("error: the dashboard needs Dash: pip install 'pbt_evo[dashboard]'", file=sys.stderr)
        return 2
    from ..runread import RunReadError
    from .app import create_app
    from .catalog import Catalog
    from .roots import Roots

    warm = args.keep if args.warm is None else args.warm
    if args.interval <= 0 or args.keep < 1 or not 0 <= warm <= args.keep or not 0 < args.port < 65536:
        print("error: --interval must be > 0, --keep >= 1, --warm in 0..--keep and --port in 1..65535", file=sys.stderr)
        return 2
    try:
        roots = Roots(args.folders)
    except RunReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(f"warning: serving on {args.host}: anyone who can reach this machine on port {args.port} can read"
              f" these run folders (no login, no encryption)", file=sys.stderr)
    if not _port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is in use (or not allowed): pass another with --port",
              file=sys.stderr)
        return 2
    catalog = Catalog(roots, keep=args.keep)
    app = create_app(catalog, int(args.interval * 1000))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    threading.Thread(target=_warm, args=(catalog, warm), daemon=True).start()
    shown = LOOPBACK if args.host in ("0.0.0.0", "::") else args.host
    print(f"dashboard of {', '.join(str(p) for p in roots.folders.values())}: http://{shown}:{args.port}/"
          " (read-only; Ctrl-C stops it)", flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=False)
    except KeyboardInterrupt:
        pass
    return 0


def _warm(catalog: Any, count: int) -> None:
    """Read the most recently written runs (a :class:`.catalog.Catalog`'s) before anyone asks: a big
    population takes a second or two to parse."""
    try:
        runs = sorted(catalog.roots.runs(), key=lambda p: max((f.stat().st_mtime for f in p.glob("*.jsonl")),
                                                               default=0), reverse=True)
        for path in runs[:count]:
            catalog.view(catalog.roots.key(path), lambda view: [view.arrays(g) for g in view.gens])
    except Exception:  # a folder that cannot be read says so when its page is opened
        pass
