"""Search configs: one YAML file per search, validated before anything starts.

Every key, its type, its default (the paper's where the paper has one) and what is allowed are in
:data:`SCHEMA`; nothing else is read, nothing is evaluated. ``--set key.sub=value`` overrides parse the
value as YAML. Errors name the file, the key and what is allowed.

>>> cfg = resolve({"task": {"target": "tasks.digits:DigitsTask"},
...                "algorithm": {"population": 8, "e_total": 4, "e_step": 1}}, "demo.yaml")
>>> cfg["algorithm"]["tau"], cfg["algorithm"]["shrink_perturb"], cfg["parallel"]["workers"]
(0.25, [0.4, 0.1], 2)
"""

from __future__ import annotations

import copy
import difflib
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .keys import EXPECTED, REQUIRED, Key, Library, choice_error, type_ok

if TYPE_CHECKING:  # the library (torch) is imported where it is used: a bad config fails before it loads
    from ..objectives import Objectives
    from ..space import SearchSpace
    from ..task import Task, TaskSpec
    from ..variants import Variant

# keys of earlier versions, accepted and ignored with a one-line notice, so old configs and run folders still load
RETIRED = {("parallel", "hold_states"): "every state is kept in Ray's object store (held states were removed:"
                                        " their gain was within the noise, see docs/PERFORMANCE.md)"}
log = logging.getLogger("pbt_evo")


class ConfigError(ValueError):
    """A config problem, worded for the user: file, key, what is wrong, what is allowed."""


class TaskError(RuntimeError):
    """The task could not be built (missing data, weights or package); the message says what to do."""


def spec_of(cfg: Mapping[str, Any]) -> TaskSpec:
    """The task a resolved config names, with its ``task.hyperparameters`` (:mod:`pbt_evo.hyper`).

    >>> spec_of({"task": {"target": "tasks.digits:DigitsTask", "args": {}, "hyperparameters": {}}}).target
    'tasks.digits:DigitsTask'
    """
    from ..hyper import task_spec

    return task_spec(cfg["task"]["target"], cfg["task"]["args"], cfg["task"].get("hyperparameters"))


def build_task(cfg: Mapping[str, Any], where: str = "config") -> Task:
    """The task a resolved config names, or :class:`TaskError` with the reason (:class:`ConfigError`
    when a hyperparameter it names does not exist)."""
    from ..hyper import HyperparameterError
    from ..widths import UnitAxisError, check_task_widths

    spec = spec_of(cfg)
    try:
        task = spec.build()
    except HyperparameterError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise TaskError(f"task.args do not fit {spec.target}: {exc}") from None
    except Exception as exc:  # the task's own message says what is missing (data, weights, packages)
        raise TaskError(f"task {spec.target} could not be built: {exc}") from None
    try:
        check_task_widths(task)  # a wrong unit-axis declaration stops here, not in a worker mid-run
    except UnitAxisError as exc:
        raise TaskError(f"task {spec.target}: {exc}") from None
    return task


def _positive(x: Any) -> bool:
    return x > 0


SCHEMA: dict[str, Any] = {
    "name": Key(None, "str_or_none", "run name; the run folder is <output.dir>/<name> (default: config file name)"),
    "seed": Key(0, "int", "seed of the driver's random streams (selection, mixing, initial population)"),
    "task": {
        "target": Key(REQUIRED, "str", "the task class, 'package.module:Class' (e.g. tasks.digits:DigitsTask)"),
        "args": Key({}, "map", "keyword arguments of the task class"),
        "hyperparameters": Key({}, "map", "optimizer hyperparameters in the genome, {optimizer: {parameter: values}},"
                               " the values a grid ([increasing options], {log: [low, high, n]}, {linear: [low, high,"
                               " n]}) or a continuous range ({uniform: [low, high]}, {loguniform: [low, high]})"
                               " (e.g. adam: {lr: {log: [1.0e-4, 1.0e-2, 5]}} or adam: {lr: {loguniform: [1.0e-4,"
                               " 1.0e-1]}}; pbt_evo.hyper)"),
    },
    "algorithm": {
        "name": Key("pbt_nas", "choice", "the algorithm: a variant of the loop, BOHB or a one-shot search (the"
                    " registry pbt_evo.variants.VARIANTS; see --keys)", choices=Library("variants", "VARIANTS")),
        "population": Key(REQUIRED, "int", "population size N", check=lambda n: n >= 2, rule=">= 2"),
        "e_total": Key(REQUIRED, "int", "epochs each member trains in total", check=_positive, rule="> 0"),
        "e_step": Key(REQUIRED, "e_step", "epochs per generation: an int or {first epoch: step}"),
        "tau": Key(0.25, "float", "fraction replaced / used as parents", check=lambda t: 0 < t <= 0.5, rule="in (0, 0.5]"),
        "p": Key(0.25, "float", "probability of taking each variable from the donor", check=lambda p: 0 <= p <= 1,
                 rule="in [0, 1]"),
        "shrink_perturb": Key(Library("weights", "SHRINK_PERTURB"), "pair",
                              "[lambda, gamma]: w = lambda * w_donor + gamma * w_fresh"),
        "init": Key("balanced", "choice", "initial population sampling (naswot: best N of k*N by the training-free"
                    " NASWOT score, see pbt_evo.naswot; size_proportional: N of k*N drawn in proportion to their"
                    " parameter counts, Balanced NAO's sampling, see pbt_evo.oneshot)",
                    choices=Library("variants", "INITS")),
        "naswot_candidates_per_member": Key(10, "int", "k: init naswot / size_proportional draws from k*N candidate"
                                            " genomes",
                                           check=_positive, rule="> 0"),
        "optimizer_policy": Key("reset", "choice", "optimizer state of inherited layers (see pbt_evo.weights)",
                                choices=Library("weights", "OPTIMIZER_POLICIES")),
        "width_policy": Key("adapt", "choice", "layers whose width a child changes (width variables, see"
                            " pbt_evo.widths): adapt (units duplicated / kept, then shrink-perturbed) or fresh",
                            choices=Library("weights", "WIDTH_POLICIES")),
        "research_code_compat": Key(False, "bool", "the research code's choices instead of pbt_evo's"
                                    " (docs/REPRODUCING.md): SEARL-like parent the fitter of two, averaged layers"
                                    " copied unperturbed, the task's research_code_args (GAN: Adam eps 1e-4,"
                                    " GanHard cell without branch 2), ..."),
        "architecture": Key({}, "map", "algorithm pbt (and pb2, pb2_mix, fire_pbt without mixing): the one"
                            " architecture, values by variable name (missing ones: the task's default_architecture,"
                            " else the first option)"),
        "patience": Key(5, "int", "bg_pbt: generations without a new best fitness before a new generation of"
                        " architectures and hyperparameters", check=_positive, rule="> 0"),
        "mixing": Key(False, "bool", "pb2, pb2_mix, fire_pbt: search the architecture too, by PBT-NAS's mixing of"
                      " two parents (false: one architecture, as classic PBT; docs/PBT_FAMILY.md)"),
        "resample_probability": Key(0.25, "float", "explore: probability that a hyperparameter is resampled"
                                    " instead of moved to a neighbouring option (Ray Tune's default 0.25)",
                                    check=lambda p: 0 <= p <= 1, rule="in [0, 1]"),
        "explore_probability": Key(1.0, "float", "explore: probability that each hyperparameter is explored",
                                   check=lambda p: 0 <= p <= 1, rule="in [0, 1]"),
        "hall_of_fame": Key(1, "int", "best trained states kept (with several objectives: the whole Pareto front)",
                            check=_positive, rule="> 0"),
        "max_early": Key(None, "int_or_none", "members that may start their next generation before the"
                         " slowest of this one ends, per generation (each holds a second state meanwhile):"
                         " null, every sure survivor; 0, none (the synchronous loop)",
                         check=lambda k: k is None or k >= 0, rule=">= 0 or null"),
        "objectives": Key([{"fitness": "max"}], "objectives", "what is optimised, in order, each 'name: max|min':"
                          " fitness first, then params, flops, latency or the task's own (pbt_evo.objectives);"
                          " more than fitness: NSGA-II's order, a Pareto front, hypervolume (pbt_evo.pareto)"),
        "oneshot": {  # bnao / nao (pbt_evo.oneshot): population * e_total member-epochs, as PBT-NAS spends
            "candidates": Key(50, "int", "bnao/nao: initial candidate pool |X|", check=_positive, rule="> 0"),
            "seeds": Key(10, "int", "bnao/nao: K, the best candidates moved by the controller each round",
                         check=_positive, rule="> 0"),
            "rounds": Key(3, "int", "bnao/nao: L, rounds of supernet training, evaluation and new candidates",
                          check=_positive, rule="> 0"),
            "eta": Key(1.0, "float", "bnao/nao: step size of the gradient steps on the embedding", check=_positive,
                       rule="> 0"),
            "steps_per_sample": Key(1, "int", "bnao/nao: minibatches each sampled architecture trains",
                                    check=_positive, rule="> 0"),
            "standalone": Key(2, "int", "bnao/nao: best candidates trained stand-alone at the end", check=_positive,
                              rule="> 0"),
            "standalone_epochs": Key(None, "int_or_none", "bnao/nao: epochs of each stand-alone network (null:"
                                     " e_total); the supernet gets population * e_total - standalone * this",
                                     check=lambda e: e is None or e > 0, rule="> 0 or null"),
            "controller_epochs": Key(300, "int", "bnao/nao: epochs the controller trains each round",
                                     check=_positive, rule="> 0"),
            "trade_off": Key(0.8, "float", "bnao/nao: lambda, the predictor's share of the controller's loss",
                             check=lambda t: 0 <= t <= 1, rule="in [0, 1]"),
            "cell": Key("mlp", "choice", "bnao/nao: the controller's encoder and decoder", choices=("mlp", "lstm")),
        },
        "reference_point": Key(None, "numbers_or_none", "the hypervolume's reference point, one value per objective"
                               " in its units (e.g. [0.0, 2000]: accuracy 0, 2,000 parameters); needed with more"
                               " objectives than fitness"),
    },
    "parallel": {
        "backend": Key("ray", "choice", "ray: persistent Ray workers; serial: this process", choices=("ray", "serial")),
        "workers": Key(2, "int", "Ray workers (persistent actors)", check=_positive, rule="> 0"),
        "cpus_per_worker": Key(1.0, "float", "CPUs per worker (also its torch threads)", check=_positive, rule="> 0"),
        "gpus_per_worker": Key(0.0, "float", "GPU (fraction) per worker", check=lambda g: g >= 0, rule=">= 0"),
        "address": Key(None, "str_or_none", "Ray cluster address ('auto' joins a running cluster); null starts one"),
        "max_retries": Key(1, "int", "retries of a failed member on another worker", check=lambda r: r >= 0, rule=">= 0"),
        "wait_timeout": Key(None, "float_or_none", "seconds to wait for the workers to start when the cluster is busy"
                            " (and, when set, for nodes an autoscaling cluster adds); null: no limit. A request the"
                            " cluster cannot hold stops at once unless this is set",
                            check=lambda t: t is None or t > 0, rule="> 0 or null"),
    },
    "output": {
        "dir": Key("runs", "str", "folder that holds run folders"),
        "keep_checkpoints": Key(2, "int", "complete checkpoints kept on disk (2: a damaged latest one falls back to"
                                " the one before)", check=_positive, rule="> 0"),
        "checkpoint_every": Key(1, "int", "generations between checkpoints", check=_positive, rule="> 0"),
        "tensorboard": Key(True, "bool", "write TensorBoard scalars (if tensorboard is installed)"),
        "final_evaluation": Key(False, "bool", "score the best network with its member's final_scores() at the"
                                " end (GAN: FID on 50,000 images and Inception Score)"),
    },
}


def _merge(schema: Mapping[str, Any], data: Mapping[str, Any], where: str, path: str, origin: Mapping[str, str],
           later: list[Callable[[], None]]) -> dict[str, Any]:
    """The section ``data`` checked against ``schema`` with defaults filled in; what needs the library
    (:class:`Library`) is appended to ``later``, to run once the rest has passed."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: '{path or 'the file'}' must be a mapping of keys, got {type(data).__name__}")
    unknown = [k for k in data if k not in schema]
    if unknown:
        dotted = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{where}: unknown key '{dotted}'{_did_you_mean(str(unknown[0]), schema, path)}; allowed"
                          f" here: {', '.join(schema)}")
    out: dict[str, Any] = {}
    for name, spec in schema.items():
        dotted = f"{path}.{name}" if path else name
        if isinstance(spec, dict):
            out[name] = _merge(spec, data.get(name, {}) or {}, where, dotted, origin, later)
            continue
        at = origin.get(dotted, where)  # a value given by --set is not the file's
        if name not in data:
            if spec.default is REQUIRED:
                raise ConfigError(f"{where}: missing key '{dotted}' ({spec.doc})")
            if isinstance(spec.default, Library):
                later.append(lambda out=out, name=name, spec=spec: out.__setitem__(name, spec.default_value()))
            else:
                out[name] = spec.default_value()
            continue
        value = data[name]
        if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(spec.choices, Library):
            later.append(lambda at=at, dotted=dotted, value=value, spec=spec: _check_choice(at, dotted, value, spec))
            out[name] = value
            continue
        if not type_ok(spec, value):
            _check_choice(at, dotted, value, spec)
            raise ConfigError(f"{at}: '{dotted}' is {value!r}; expected {EXPECTED[spec.kind]} ({spec.doc})")
        if spec.check is not None and not spec.check(value):
            raise ConfigError(f"{at}: '{dotted}' is {data[name]!r}; it must be {spec.rule}")
        out[name] = list(value) if spec.kind == "pair" else value
    return out


def _check_choice(at: str, dotted: str, value: Any, spec: Key) -> None:
    error = choice_error(at, dotted, value, spec)
    if error:
        raise ConfigError(error)


def resolve(data: Mapping[str, Any], where: str = "config", origin: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Validate ``data`` and fill in every default; raises :class:`ConfigError`. ``origin`` names where a
    dotted key's value came from instead of ``where`` (``--set key=value``)."""
    data = copy.deepcopy(dict(data or {}))
    for (section, key), why in RETIRED.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            del data[section][key]
            log.warning("%s: '%s.%s' is no longer used and is ignored: %s", where, section, key, why)
    later: list[Callable[[], None]] = []
    cfg = _merge(SCHEMA, data, where, "", origin or {}, later)
    # the checks below need the library (torch): a config that fails the schema stops before it loads
    for step in later:
        step()
    from ..hyper import HyperparameterError, optimizer_variables
    from ..oneshot.budget import Budget, BudgetError
    from ..variants import variant

    alg = cfg["algorithm"]
    check_variant(variant(alg["name"]), alg, where)
    if variant(alg["name"]).runner == "oneshot":
        one = alg["oneshot"]
        try:
            Budget(alg["population"], alg["e_total"], one["standalone"], one["standalone_epochs"] or alg["e_total"])
        except BudgetError as exc:
            raise ConfigError(f"{where}: 'algorithm.oneshot.standalone' / 'standalone_epochs': {exc}") from None
    objectives_of(cfg, where)
    if alg["research_code_compat"]:
        for key, value in research_code_args(cfg["task"]["target"], where).items():
            cfg["task"]["args"].setdefault(key, value)  # a value the config sets wins
    try:
        optimizer_variables(cfg["task"]["hyperparameters"])  # grids checked before anything is built
    except HyperparameterError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return cfg


def check_variant(v: Variant, alg: Mapping[str, Any], where: str) -> None:
    """What the chosen variant needs of the ``algorithm`` section (its registry entry says)."""
    from ..operators import n_selected
    from ..variants import VARIANTS

    if alg["population"] < v.min_population:
        raise ConfigError(f"{where}: 'algorithm.population' {alg['population']}: {v.name} needs at least"
                          f" {v.min_population} ({v.why_population})")
    if alg["mixing"] and not v.optional_mixing:
        optional = ", ".join(n for n, x in VARIANTS.items() if x.optional_mixing)
        raise ConfigError(f"{where}: 'algorithm.mixing' is for {optional}, not {v.name} ({v.summary})")
    k, parents = n_selected(alg["population"], alg["tau"]), v.min_parents(alg["mixing"])
    if parents >= 2 and k < parents:
        raise ConfigError(f"{where}: 'algorithm.population' {alg['population']} with tau {alg['tau']} gives {k} parent;"
                          f" mixing needs at least {parents} (use population >= 6 with tau 0.25)")
    if parents == 1 and k < 1:
        raise ConfigError(f"{where}: 'algorithm.population' * 'algorithm.tau' rounds to 0; nothing would be replaced")
    if not v.multi_objective and (len(alg["objectives"]) > 1 or alg["init"] not in v.inits):
        raise ConfigError(f"{where}: 'algorithm.name' {v.name} optimises the fitness alone from its own samples"
                          f" ({v.summary}): it takes neither several 'algorithm.objectives' nor 'algorithm.init'"
                          f" {alg['init']}")
    if alg["init"] not in v.inits:
        raise ConfigError(f"{where}: 'algorithm.init' {alg['init']} is not for algorithm {v.name}"
                          f" ({v.summary}); use {' or '.join(v.inits)}")


def check_runner(cfg: Mapping[str, Any], space: SearchSpace, where: str = "config") -> None:
    """Only the loop's variants take continuous hyperparameters (BOHB and the one-shot searches model
    categorical genes): :class:`ConfigError` naming them otherwise."""
    from ..variants import RUNNER_WORDS, variant

    name = cfg["algorithm"]["name"]
    runner = variant(name).runner
    if runner != "loop" and space.continuous:
        names = ", ".join(space[i].name for i in space.continuous)
        raise ConfigError(f"{where}: 'algorithm.name' {name} is a {RUNNER_WORDS[runner]} over categorical genes;"
                          f" {names} has a continuous range: give a grid instead, e.g. {{log: [low, high, 7]}}")


def research_code_args(target: str, where: str = "config") -> dict[str, Any]:
    """The task arguments ``algorithm.research_code_compat`` sets for a task class (its
    ``research_code_args``); the class is imported, not built.

    >>> research_code_args("tasks.gan:GanTask")
    {'adam_eps': 0.0001, 'd_branch2': False}
    """
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{where}: 'task.target' {target!r} cannot be imported ({exc})") from None
    return dict(getattr(cls, "research_code_args", {}) or {})


def objectives_of(cfg: Mapping[str, Any], where: str = "config") -> Objectives:
    """The config's objectives; with more than fitness, a reference point must give one value each.

    >>> objectives_of({"algorithm": {"objectives": [{"fitness": "max"}], "reference_point": None}}).single
    True
    """
    from ..objectives import Objectives

    alg = cfg["algorithm"]
    try:
        objectives = Objectives.parse(alg["objectives"])
    except ValueError as exc:
        raise ConfigError(f"{where}: 'algorithm.objectives' is {alg['objectives']!r}: {exc}") from None
    ref = alg["reference_point"]
    if not objectives.single and (ref is None or len(ref) != len(objectives.names)):
        raise ConfigError(f"{where}: 'algorithm.reference_point' is {ref!r}; with objectives"
                          f" {objectives.describe()} it must be a list of {len(objectives.names)} numbers, the"
                          " hypervolume's reference point in each objective's units (e.g. [0.0, 2000])")
    return objectives


def set_override(data: dict[str, Any], assignment: str) -> str:
    """Apply one ``key.sub=value`` override (value parsed as YAML) to raw config ``data``; returns the
    config key it sets (a ``map`` key such as ``task.args`` for ``task.args.channels``). An unknown key
    is refused with the closest known one.

    >>> d = {"algorithm": {"e_total": 300}}
    >>> set_override(d, "algorithm.e_total=4"), d
    ('algorithm.e_total', {'algorithm': {'e_total': 4}})
    >>> set_override(d, "algorithm.populaton=8")
    Traceback (most recent call last):
    ...
    pbt_evo.cli.config.ConfigError: --set 'algorithm.populaton=8': unknown key 'algorithm.populaton' (did you mean 'algorithm.population'?); see `python -m pbt_evo.run --keys`
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key.sub=value, e.g. --set algorithm.e_total=10")
    dotted, _, text = assignment.partition("=")
    keys = dotted.strip().split(".")
    key = _schema_key(keys, f"--set {assignment!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({exc.problem})") from None
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k, {}), dict):
            raise ConfigError(f"--set {assignment!r}: '{k}' is not a section")
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return key


def _schema_key(keys: list[str], where: str) -> str:
    """The config key that dotted ``keys`` set (ConfigError, with a suggestion, for an unknown one)."""
    node: Any = SCHEMA
    for depth, k in enumerate(keys):
        path = ".".join(keys[:depth])
        if not isinstance(node, dict):
            if node.kind == "map":  # free-form below (task.args, task.hyperparameters, algorithm.architecture)
                return path
            raise ConfigError(f"{where}: '{path}' is a value, not a section")
        if k not in node:
            dotted = ".".join(keys[:depth + 1])
            raise ConfigError(f"{where}: unknown key '{dotted}'{_did_you_mean(k, node, path)}; see"
                              " `python -m pbt_evo.run --keys`")
        node = node[k]
    if isinstance(node, dict):
        raise ConfigError(f"{where}: '{'.'.join(keys)}' is a section; set one of its keys: {', '.join(node)}")
    return ".".join(keys)


def _did_you_mean(name: str, schema: Mapping[str, Any], path: str) -> str:
    """`` (did you mean 'section.key'?)`` for the known key closest to a misspelt one, else nothing.

    >>> _did_you_mean("tua", {"tau": None, "p": None}, "algorithm")
    " (did you mean 'algorithm.tau'?)"
    """
    close = difflib.get_close_matches(name, list(schema), n=1, cutoff=0.6)
    return f" (did you mean '{path + '.' if path else ''}{close[0]}'?)" if close else ""


def diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys in which two configs differ.

    >>> diff({"algorithm": {"p": 0.25, "tau": 0.25}}, {"algorithm": {"p": 0.5, "tau": 0.25}})
    ['algorithm.p']
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def load(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read, override and validate a config file."""
    path = Path(path)
    data = read(path)
    origin = {set_override(data, assignment): f"--set {assignment!r}" for assignment in overrides}
    cfg = resolve(data, str(path), origin)
    if cfg["name"] is None:
        cfg["name"] = path.stem
    return cfg


def read(path: Path) -> dict[str, Any]:
    """A config file's raw mapping; ConfigError if it is missing or not YAML."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (configs live in spaces/, e.g. spaces/digits.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def describe() -> str:
    """Every key with its default and meaning, for ``python -m pbt_evo.run --keys``."""
    lines: list[str] = []

    def walk(schema: Mapping[str, Any], prefix: str) -> None:
        for name, spec in schema.items():
            dotted = f"{prefix}{name}"
            if isinstance(spec, dict):
                walk(spec, dotted + ".")
            else:
                default = ("(required)" if spec.default is REQUIRED else "null" if spec.default is None
                           else repr(spec.default_value()))
                choices = f" [{' | '.join(map(str, spec.options()))}]" if spec.options() else ""
                lines.append(f"{dotted:30s} {default:12s} {spec.doc}{choices}")

    walk(SCHEMA, "")
    return "\n".join(lines)
