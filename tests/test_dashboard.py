"""The dashboard (python -m pbt_evo.dashboard) on real run folders made here: its server as a real process
on 127.0.0.1, its callbacks over HTTP, and its pages in a real headless browser (Debian's chromium through
selenium): the run list, a generation appended while the page is open, the family tree's click, a sweep,
paths outside its folders refused, unreadable folders as one line, nothing asked of the internet.
Also the TensorBoard HParams data a run writes."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pbt_evo.cli import plot, schedule
from pbt_evo.cli.dashboard import main as dashboard_main
from pbt_evo.cli.dashboard import views
from pbt_evo.cli.dashboard.probe import Server, free_port
from pbt_evo.cli.runlock import RunLock
from pbt_evo.cli.runread import read_jsonl, read_run

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "parallel.backend=serial", "--set", "algorithm.e_step=1", "--set", "task.args.channels=8"]
README_COMMAND = re.search(r"```bash\n(python -m pbt_evo.dashboard runs/)\n```", (ROOT / "README.md").read_text())


def run_cli(*args, cwd):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/digits: a real digits search (serial, 6 members, 4 generations, TensorBoard on); runs/digits_front:
    the same searching accuracy against parameters (3 generations); runs/study: a real sweep (pbt_nas and
    random, seeds 0 and 1, 2 generations of 8 members)."""
    tmp = tmp_path_factory.mktemp("dash")
    run_cli("-m", "pbt_evo.run", str(ROOT / "spaces" / "digits.yaml"), *SMALL, "--set", "algorithm.e_total=4",
            "--set", "algorithm.population=6", "--set", "output.tensorboard=true", "--out", "runs", "--quiet", cwd=tmp)
    run_cli("-m", "pbt_evo.run", str(ROOT / "spaces" / "digits.yaml"), *SMALL, "--set", "algorithm.e_total=3",
            "--set", "algorithm.population=6", "--set", "algorithm.objectives=[{fitness: max}, {params: min}]",
            "--set", "algorithm.reference_point=[0, 20000]", "--set", "output.tensorboard=false",
            "--name", "digits_front", "--out", "runs", "--quiet", cwd=tmp)
    run_cli("-m", "pbt_evo.sweep", str(ROOT / "spaces" / "digits.yaml"), "--algorithms", "pbt_nas,random",
            "--seeds", "0,1", *SMALL, "--set", "algorithm.e_total=2", "--set", "algorithm.population=8",
            "--set", "output.tensorboard=false", "--out", "runs/study", cwd=tmp)
    return tmp


@pytest.fixture(scope="module")
def server(runs):
    """The README's command, verbatim, in the folder holding runs/ (a free port added)."""
    assert README_COMMAND, "README has no ```bash block with `python -m pbt_evo.dashboard runs/`"
    args = README_COMMAND.group(1).split()[3:]
    with Server(args, "--interval", "0.5", cwd=runs) as s:
        yield s


def snapshot(folder):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# -- reading: the views agree with the CLI's own functions ----------------------------------------------
def test_views_agree_with_plot_and_schedule(runs):
    run_dir = runs / "runs" / "digits"
    view = views.RunView(run_dir)
    run = view.update()
    pop = read_jsonl(run_dir / "population.jsonl")
    space = json.loads((run_dir / "space.json").read_text())
    epochs, labels, shares = views.origin_shares(view)
    ref_epochs, ref = plot.origin_shares(pop, [i for i, v in enumerate(space.values()) if v["owns"]], 6)
    assert epochs == ref_epochs == [1, 2, 3, 4] and labels == [f"net {k}" for k in range(6)] + ["new"]
    assert shares == pytest.approx(ref, abs=1e-12)  # plot.py: "new" = 1 - the others
    best = views.best_id(view)
    assert best == run.best["id"] == json.loads((run_dir / "best" / "genome.json").read_text())["id"]
    for name in space:
        assert [(e, v) for e, v in views.best_schedule(view, best, name)] == \
            [(end, v) for _, end, v in schedule.schedule(pop, run.lineage, best, name)]
    tree = views.tree(view, best)
    ancestors = schedule.family_tree(run.lineage, best)
    assert set(tree["nodes"]) == {r["child"] for r in ancestors} | {p for r in ancestors for p in r["parents"]}
    columns, rows = views.population_table(view)
    last = [r for r in pop if r["gen"] == 4]
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in last)
    assert [r["fitness"] for r in rows] == sorted((r["fitness"] for r in last), reverse=True)
    assert columns[:7] == ["id", "fitness", "epochs", "made", "parents", "origin", "genome"]
    assert columns[7:] == list(space)
    by_id = {r["id"]: r for r in last}
    for row in rows:
        assert row["genome"] == " ".join(map(str, by_id[row["id"]]["genome"]))
        assert [row[name] for name in space] == list(by_id[row["id"]]["arch"].values())
        assert row["parents"] == (" + ".join(map(str, by_id[row["id"]]["parents"])) or "-")


def benchmark_module():
    spec = importlib.util.spec_from_file_location("bench_dashboard", ROOT / "benchmarks" / "dashboard.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_a_view_follows_appends_and_a_resume_that_rewrites_the_logs(tmp_path):
    """The writer's own truncate (what a resume does to rows after its checkpoint), then new rows."""
    sim = benchmark_module().make_run(tmp_path / "syn", population=8, generations=3)
    view, later = views.RunView(tmp_path / "syn"), views.RunView(tmp_path / "syn")
    view.update()
    later.update()
    assert sorted(view.gens) == [1, 2, 3] and len(view.made) == 6
    old_third = [r["id"] for r in view.gens[3]]
    sim.folder.truncate(2)
    view.update()  # sees the files shorter
    assert sorted(view.gens) == [1, 2] and len(view.made) == 4 and views.fitness_lines(view)[0].size == 16 + 10
    sim.gen, sim.epochs = 2, 4  # resumed from generation 2; its population is another one: other members
    sim.step()
    sim.step()
    pop = read_jsonl(tmp_path / "syn" / "population.jsonl")
    lineage = read_jsonl(tmp_path / "syn" / "lineage.jsonl")
    for v in (view, later):  # `later` sees the files rewritten and longer than before, never shorter
        v.update()
        assert sorted(v.gens) == [1, 2, 3, 4] and [r["id"] for r in v.gens[3]] != old_third
        assert {g: [r["id"] for r in rows] for g, rows in v.gens.items()} == \
            {g: [r["id"] for r in pop if r["gen"] == g] for g in (1, 2, 3, 4)}
        assert v.made == {r["child"]: r for r in lineage}


def test_synthetic_benchmark_folder_has_the_real_records_keys(runs, tmp_path):
    benchmark_module().make_run(tmp_path / "syn", population=8, generations=3)
    syn, real = read_run(tmp_path / "syn"), read_run(runs / "runs" / "digits")
    for name in ("log", "population", "lineage"):
        assert set(getattr(syn, name)[0]) == set(getattr(real, name)[0]), name
    assert len(syn.population) == 24 and len(syn.lineage) == 3 * 2 and syn.generation == 3


def test_the_pareto_front_figure_is_the_runs_front(runs, server):
    fronts = read_jsonl(runs / "runs" / "digits_front" / "front.jsonl")
    head, _ = server.run_head("runs/digits_front")
    response, _ = server.run_figures("runs/digits_front", head["run-version"]["data"])
    figure = response["fig-front"]["figure"]
    (last,) = [t for t in figure["data"] if t["name"].startswith("front after gen 3")]
    assert last["name"] == f"front after gen 3 (hypervolume {fronts[-1]['hypervolume']:.4g})"
    assert list(zip(last["x"], last["y"])) == sorted((m["values"][1], m["values"][0]) for m in fronts[-1]["members"])
    assert figure["layout"]["xaxis"]["title"]["text"] == "params" and figure["layout"]["yaxis"]["title"]["text"] == "fitness"
    pop = read_jsonl(runs / "runs" / "digits_front" / "population.jsonl")
    (members,) = [t for t in figure["data"] if t["name"] == "trained members"]
    assert len(members["x"]) == len(pop) == 18


# -- TensorBoard's HParams plugin data --------------------------------------------------------------------
def test_runs_write_each_members_hparams_and_fitness_for_tensorboard(runs):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    run_dir = runs / "runs" / "digits"
    space = json.loads((run_dir / "space.json").read_text())
    pop = read_jsonl(run_dir / "population.jsonl")

    def summaries(folder):
        out = []
        for f in sorted(folder.glob("events.out.tfevents.*")):
            for event in EventFileLoader(str(f)).Load():
                out += [(event.step, v) for v in event.summary.value]
        return out

    (experiment,) = [metadata.parse_experiment_plugin_data(v.metadata.plugin_data.content)
                     for _, v in summaries(run_dir / "tb") if v.tag == metadata.EXPERIMENT_TAG]
    assert [h.name for h in experiment.hparam_infos] == list(space)
    for info in experiment.hparam_infos:
        options = space[info.name]["options"]
        kind = float if all(isinstance(o, (int, float)) for o in options) else str
        domain = [getattr(x, x.WhichOneof("kind")) for x in info.domain_discrete.values]
        assert domain == sorted(kind(o) for o in options)  # the plugin keeps a domain sorted
    assert [m.name.tag for m in experiment.metric_infos] == ["hparams/fitness"]
    members = sorted({r["id"] for r in pop})
    assert sorted(int(p.name) for p in (run_dir / "tb" / "members").iterdir()) == members
    for m in members:
        rows = [r for r in pop if r["id"] == m]
        values = summaries(run_dir / "tb" / "members" / f"{m:06d}")
        (session,) = [metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content)
                      for _, v in values if v.tag == metadata.SESSION_START_INFO_TAG]
        hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in session.hparams.items()}
        assert hparams == {k: float(v) if isinstance(v, (int, float)) else str(v) for k, v in rows[0]["arch"].items()}
        fitness = [(step, tensor_util.make_ndarray(v.tensor).item())  # as TensorBoard loads a scalar
                   for step, v in values if v.tag == "hparams/fitness"]
        assert fitness == [(r["epochs"], pytest.approx(r["fitness"], rel=1e-6)) for r in rows]


# -- the server over HTTP ----------------------------------------------------------------------------------
def test_paths_outside_the_folders_given_are_refused(runs, server):
    outside = runs / "outside"
    shutil.copytree(runs / "runs" / "digits", outside / "secret_run", ignore=shutil.ignore_patterns("tb", "checkpoints"))
    (runs / "runs" / "escape").symlink_to(outside / "secret_run")
    try:
        for path in ("/run/runs/../outside/secret_run", "/run/runs/..%2F..%2Foutside%2Fsecret_run",
                     "/run/runs/%2e%2e/outside/secret_run", "/run//" + str(outside / "secret_run"),
                     "/run/runs/escape", "/sweep/runs/../outside", "/run/" + str(outside / "secret_run"),
                     "/run/outside/secret_run"):
            response, _ = server.route(path)
            text = json.dumps(response)
            assert "refused: " in text and "is not inside the folders this dashboard was given" in text, path
            assert "run-summary" not in text and "member records" not in text, path
            head, _ = server.run_head(path.split("/", 2)[2])
            assert "refused: " in json.dumps(head) and "digits" not in json.dumps(head), path
        response, _ = server.route("/run/runs/digits")
        assert "run-summary" not in json.dumps(response) and "refused" not in json.dumps(response)
        secret = (outside / "secret_run" / "config.yaml").read_text()
        for path in ("/assets/../../outside/secret_run/config.yaml", "/assets/..%2F..%2Foutside%2Fsecret_run%2Fconfig.yaml",
                     "/_dash-component-suites/dash/../../../../" + str(outside / "secret_run" / "config.yaml"),
                     "/_dash-component-suites/pbt_evo/cli/runread.py"):  # the server's own file routes
            try:
                with urllib.request.urlopen(server.url + path, timeout=30) as r:
                    body = r.read().decode(errors="replace")
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")
            assert secret not in body and "def read_run" not in body, path
    finally:
        (runs / "runs" / "escape").unlink()


def test_unreadable_folders_are_one_line_never_a_trace(runs, server):
    bad = runs / "runs" / "bad"
    digits = runs / "runs" / "digits"
    cases = {
        "partial": lambda p: (p / "config.yaml").write_text((digits / "config.yaml").read_text()[:40]),
        "foreign": lambda p: ((p / "config.yaml").write_text("name: x\nalgorithm: {name: pbt_nas, e_total: 4}\n"),
                              (p / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')),
        "old": lambda p: (shutil.copy(digits / "config.yaml", p), (p / "best").mkdir(),
                          (p / "best" / "model.pt").write_bytes(b"\x80\x04.")),
        "damaged": lambda p: (shutil.copy(digits / "config.yaml", p),
                              (p / "population.jsonl").write_text("{}\n{oops\n{}\n")),
    }
    expected = {"partial": "config.yaml is not a pbt_evo config (no name or algorithm section)",
                "foreign": "log.jsonl: record 1 has no gen, epochs, best",
                "old": "is a run folder of pbt_evo 0.2 (pickle files); convert it with `python -m pbt_evo.convert",
                "damaged": "population.jsonl line 2 is not a JSON record"}
    try:
        for name, make in cases.items():
            (bad / name).mkdir(parents=True)
            make(bad / name)
            head, _ = server.run_head(f"runs/bad/{name}")
            line = head["run-head"]["children"]["props"]["children"]
            assert isinstance(line, str) and "\n" not in line and expected[name] in line, line
            assert "Traceback" not in json.dumps(head)
        rows, _ = server.call([("run-list", "data"), ("sweep-list", "children"), ("list-note", "children")],
                              [("list-tick", "n_intervals", None)])
        status = {r["folder"]: (r["status"], r["error"]) for r in rows["run-list"]["data"]}
        assert status["runs/digits"] == ("done", "")
        assert status["runs/bad/damaged"] == ("stopped", "")  # the list reads logs only; its page said why
        for name in ("partial", "foreign", "old"):
            state, line = status[f"runs/bad/{name}"]
            assert state == "unreadable" and expected[name] in line, (name, state, line)
    finally:
        shutil.rmtree(bad)


def test_a_folder_naming_code_is_read_and_its_code_never_run(runs, server):
    """The server's working folder is on its import path: a task there that a config names would import
    at once if anything built it."""
    (runs / "evil_task.py").write_text("from pathlib import Path\nPath(__file__).with_name('EXECUTED').touch()\n"
                                       "class Task:\n    pass\n")
    run = runs / "runs" / "named"
    shutil.copytree(runs / "runs" / "digits", run, ignore=shutil.ignore_patterns("tb", "checkpoints"))
    for name in ("config.yaml", "best/genome.json"):
        text = (run / name).read_text()
        assert "tasks.digits:DigitsTask" in text
        (run / name).write_text(text.replace("tasks.digits:DigitsTask", "evil_task:Task"))
    try:
        head, _ = server.run_head("runs/named")
        version = head["run-version"]["data"]
        figures_, _ = server.run_figures("runs/named", version)
        table, _ = server.population("runs/named", version)
        assert len(table["population"]["data"]) == 6 and "fig-tree" in figures_
        server.tree_click("runs/named", read_run(run).best["id"])
        server.call([("run-list", "data"), ("sweep-list", "children"), ("list-note", "children")],
                    [("list-tick", "n_intervals", None)])
        assert not (runs / "EXECUTED").exists()
    finally:
        shutil.rmtree(run)


def test_cli_errors_and_the_warning_for_an_open_host(tmp_path, capsys):
    assert dashboard_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nowhere'} is not a folder (give run folders, a sweep's folder or a folder of runs)\n"
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert dashboard_main([str(tmp_path), "--host", "0.0.0.0", "--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: serving on 0.0.0.0: anyone who can reach this machine on port {port} can read")
    assert err[1] == f"error: port {port} on 0.0.0.0 is in use (or not allowed): pass another with --port"
    assert free_port() != port


# -- in a real browser -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("the dashboard's browser tests need Debian's chromium and its driver:"
                    " apt-get install -y chromium chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700",
                "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go (a tmp folder; also PBT_EVO_SCREENSHOTS, e.g. docs/img, when it is set)."""
    return tmp_path_factory.mktemp("screenshots")


def screenshot(browser, shots, name):
    time.sleep(1.0)  # the last figure's transition
    path = shots / f"dashboard_{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 20_000
    if os.environ.get("PBT_EVO_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["PBT_EVO_SCREENSHOTS"]) / path.name)
    return path


def wait_text(browser, element_id, predicate, timeout=90):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def text(b):
        try:
            value = b.find_element("id", element_id).text
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return value if predicate(value) else False

    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(text)


def table_rows(browser, element_id):
    """A DataTable's cells as the page shows them, row by row."""
    return browser.execute_script(
        f"return Array.from(document.querySelectorAll('#{element_id} tr')).map(tr =>"
        " Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim())).filter(r => r.length);")


def test_the_run_list_shows_the_runs(server, browser, shots):
    browser.get(server.url + "/")
    wait_text(browser, "run-list", lambda t: "digits_random_s1" in t)
    rows = {r[0]: r[1:] for r in table_rows(browser, "run-list")}
    best = read_run(server.cwd / "runs" / "digits").best_fitness
    assert rows["digits"][:7] == ["runs/digits", "pbt_nas", "done", "4", "4/4", f"{best:.4f}", rows["digits"][6]]
    assert re.fullmatch(r"\d+ (s|min) ago", rows["digits"][6])
    assert {"digits_pbt_nas_s0", "digits_pbt_nas_s1", "digits_random_s0", "digits_random_s1"} <= set(rows)
    assert rows["digits_random_s1"][:5] == ["runs/study/digits_random_s1", "random", "done", "2", "2/2"]
    assert "runs/study (4 runs)" in browser.find_element("id", "sweep-list").text
    screenshot(browser, shots, "list")


def points(lines, gen):
    """Points of the fitness figure's member polyline up to ``gen``: one per record, a gap after each member."""
    rows = [json.loads(r) for r in lines if json.loads(r)["gen"] <= gen]
    return len(rows) + len({r["id"] for r in rows})


def wait_points(browser, n):
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("const gd = document.querySelector('#fig-fitness .js-plotly-plot');"
              " return gd && gd._fullData && gd._fullData.length ? gd._fullData[0].x.length : -1;")
    WebDriverWait(browser, 60, poll_frequency=0.2).until(lambda b: b.execute_script(script) == n)


def test_a_generation_appended_while_the_page_is_open_appears_without_a_reload(server, browser, shots):
    """runs/live: the real run as it was after 2 generations, held by a run lock (running); then its 3rd
    generation's rows are appended, as the run writes them."""
    real, live = server.cwd / "runs" / "digits", server.cwd / "runs" / "live"
    live.mkdir()
    for name in ("config.yaml", "space.json"):
        shutil.copy(real / name, live / name)
    files = ("log.jsonl", "population.jsonl", "lineage.jsonl")
    rows = {name: (real / name).read_text().splitlines(keepends=True) for name in files}
    for name in files:
        (live / name).write_text("".join(r for r in rows[name] if json.loads(r)["gen"] <= 2))
    before = snapshot(real)
    with RunLock(live):
        browser.get(server.url + "/run/runs/live")
        wait_text(browser, "run-summary", lambda t: "running · generation 2 · epochs 2/4" in t)
        browser.execute_script("window.__not_reloaded = 42;")
        wait_points(browser, points(rows["population.jsonl"], 2))
        for name in files:
            with open(live / name, "a") as f:
                f.write("".join(r for r in rows[name] if json.loads(r)["gen"] == 3))
        summary = wait_text(browser, "run-summary", lambda t: "generation 3 · epochs 3/4" in t)
        assert "running" in summary and "18 member records" in summary
        wait_points(browser, points(rows["population.jsonl"], 3))  # the figure follows
        assert browser.execute_script("return window.__not_reloaded;") == 42
        third = [json.loads(r) for r in rows["population.jsonl"] if json.loads(r)["gen"] == 3]
        wait_text(browser, "population", lambda t: all(str(r["id"]) in t for r in third))
        assert sorted(int(r[0]) for r in table_rows(browser, "population")) == sorted(r["id"] for r in third)
        screenshot(browser, shots, "live")
    wait_text(browser, "run-summary", lambda t: "stopped · generation 3" in t)  # the lock was released
    assert browser.execute_script("return window.__not_reloaded;") == 42
    assert snapshot(real) == before  # read-only


def test_the_best_members_tree_node_shows_its_parents_on_click(server, browser, shots):
    from selenium.webdriver.common.action_chains import ActionChains

    run = read_run(server.cwd / "runs" / "digits")
    best = run.best["id"]
    made = {r["child"]: r for r in run.lineage}
    assert best in made, "premise: the best of this run is a child (it was member 11, of parents 9 and 5)"
    browser.get(server.url + "/run/runs/digits")
    wait_text(browser, "run-summary", lambda t: "done · generation 4" in t)
    find = ("const gd = document.querySelector('#fig-tree .js-plotly-plot'); if (!gd || !gd.data) return -1;"
            f" return gd.data.findIndex(t => t.name === 'member {best}');")
    from selenium.webdriver.support.ui import WebDriverWait

    k = WebDriverWait(browser, 60).until(lambda b: b.execute_script(find) + 1 or False) - 1
    point = browser.execute_script(f"return document.querySelectorAll('#fig-tree .scatterlayer .trace')[{k}]"
                                   ".querySelector('.point');")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", point)
    ActionChains(browser).move_to_element(point).pause(0.3).click().perform()
    base, donor = made[best]["parents"]
    details = wait_text(browser, "tree-details", lambda t: t.startswith(f"member {best}:"))
    assert f"parents: {base} (base), {donor} (donor)" in details.splitlines()
    taken = ", ".join(made[best]["taken"]) or "nothing"
    assert details.splitlines()[0] == (f"member {best}: made after generation {made[best]['gen']}: base member {base},"
                                       f" donor member {donor} (took {taken} from the donor)")
    arch = ", ".join(f"{k}={v}" for k, v in run.best["arch"].items())
    assert f"architecture: {arch}" in details.splitlines()
    layers = [name for name, v in run.space.items() if v["owns"]]
    origin = made[best]["origin"]
    origins = ", ".join(f"{name}=" + (f"net {origin[i]}" if origin[i] < 6 else "new")
                        for i, name in enumerate(run.space) if name in layers)
    assert f"layers from initial networks: {origins}" in details.splitlines()
    screenshot(browser, shots, "run")


def test_a_sweep_page_compares_its_algorithms(server, browser, shots):
    browser.get(server.url + "/sweep/runs/study")
    table = wait_text(browser, "sweep-table", lambda t: "random" in t)
    assert "pbt_nas (baseline) 2" in table.replace("|", " ").replace("  ", " ") or "pbt_nas (baseline)" in table
    assert re.search(r"random\s+2\s+\d\.\d{4} \+- \d\.\d{4}", table), table
    traces = browser.execute_script("return document.querySelector('#fig-anytime .js-plotly-plot').data"
                                    ".filter(t => t.showlegend !== false).map(t => t.name);")
    assert sorted(traces) == ["pbt_nas (n=2)", "random (n=2)"]
    screenshot(browser, shots, "sweep")


def test_pages_refuse_outside_paths_show_one_line_and_ask_nothing_of_the_internet(server, browser, shots):
    browser.get(server.url + "/run/runs/digits")  # every kind of component, graphs included
    wait_points(browser, points((server.cwd / "runs" / "digits" / "population.jsonl").read_text().splitlines(), 4))
    browser.get(server.url + "/run/runs/..%2F..%2Fetc")
    line = wait_text(browser, "page-error", bool)
    assert line == "refused: 'runs/../../etc' is not inside the folders this dashboard was given"
    screenshot(browser, shots, "refused")
    requested = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    assert requested and all(u.startswith(server.url + "/") or u.startswith("data:") for u in requested), \
        sorted(u for u in requested if not u.startswith(server.url))
    assert any("plotly.min.js" in u for u in requested)  # served by this server, from the installed package
