"""rsopt YAML configs -> validated, immutable run specifications.

Every problem is raised as a ConfigError naming the key path, e.g.
``codes[0].python.setup.serial_python_mode: 'proces' is not one of worker, thread, process``.
Nothing of the user's is imported here: functions are found by reading the
file's syntax tree, so a config is checked without running user code.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsoptd import optimizers
from rsoptd.errors import ConfigError

SAMPLERS = ("mesh_scan", "lh_scan", "start")
OPTIMIZERS = ("nlopt", "scipy", "dfols", "aposmm", "pysot", "dlib", "mobo", "nsga2")
MODES = ("worker", "thread", "process")
EXECUTION_TYPES = ("serial", "parallel")
DEFAULT_SEED = 0  # rsopt: an absent or '' seed gives a fixed, repeatable stream
DEFAULT_NWORKERS = 2

# Keys rsopt knows; rsoptd validates them all, and says in README which it ignores.
SETUP_KEYS = {
    "input_file", "function", "execution_type", "serial_python_mode", "cores", "timeout",
    "preprocess", "postprocess", "environment_variables", "code_arguments",
    "force_executor", "ignored_files",
}
CODE_KEYS = {"settings", "parameters", "setup"}
PARAMETER_KEYS = {"min", "max", "start", "samples"}
OPTIONS_KEYS = {
    "software", "method", "software_options", "nworkers", "exit_criteria", "objective_function",
    "run_dir", "seed", "sim_dirs_make", "record_interval", "output_file", "use_worker_dirs",
    "copy_final_logs", "sym_links", "mesh_file", "batch_size", "components", "executor_options",
    "mpi_launcher",
}
LAUNCHER_KEYS = {"command", "args"}
RSOPT_SOFTWARE_OPTIONS = {"record_interval"}  # accepted in software_options, used by rsopt itself, ignored
# rsopt's own example files sometimes begin '% YAML 1.1' with no '---' after it, which YAML
# parsers refuse; such a line says nothing a YAML 1.1 parser needs, so it is dropped
_LOOSE_DIRECTIVE = re.compile(r"\A%\s*YAML[^\n]*\n(?!\s*---)")
EXIT_KEYS = {"sim_max", "gen_max", "elapsed_wallclock_time", "stop_val"}


@dataclass(frozen=True)
class FunctionRef:
    file: str  # absolute path
    name: str


@dataclass(frozen=True)
class Launcher:
    """How parallel evaluations start: ``command [args] -n K python -m rsoptd.mpi_runner``."""

    command: str  # a program name (looked up on the run's PATH) or a path
    args: tuple[str, ...] = ()  # e.g. ("-f", "hosts") for mpiexec, ("--mpi=pmix",) for srun


@dataclass(frozen=True)
class Parameter:
    name: str
    min: float
    max: float
    start: float
    samples: int | None


@dataclass(frozen=True)
class PythonCode:
    input_file: str
    function: str
    execution_type: str
    mode: str
    cores: int
    timeout: float | None
    preprocess: FunctionRef | None
    postprocess: FunctionRef | None
    environment: dict[str, str]
    settings: dict[str, Any]
    parameters: tuple[Parameter, ...]


@dataclass(frozen=True)
class RunSpec:
    code: PythonCode
    software: str
    method: str | None
    software_options: dict[str, Any]
    nworkers: int
    sim_max: int | None
    objective: FunctionRef | None
    run_dir: str  # absolute; the daemon picks a fresh name if it exists
    seed: int | None  # None: random
    sim_dirs: bool
    mesh_file: str | None
    batch_size: int | None
    config_dir: str
    warnings: tuple[str, ...] = field(default=())
    elapsed_wallclock_time: float | None = None  # exit criterion: seconds from the run's (re)start
    stop_val: float | None = None  # exit criterion: stop once an evaluation's f is below this
    components: int | None = None  # DFO-LS: how many residuals each evaluation returns
    returns: str = "float"  # what the function returns: "float", "vector" or "gradient" (evaluate.Task)
    launcher: Launcher | None = None  # options.mpi_launcher; None: the daemon's default

    @property
    def parallel(self) -> bool:
        return self.code.execution_type == "parallel"

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.code.parameters]

    @property
    def needs_job_dict(self) -> bool:
        return bool(self.objective or self.code.preprocess or self.code.postprocess)


def load(text: str, config_dir: str, overrides: dict[str, Any] | None = None) -> RunSpec:
    """Parse and validate a config's YAML text; relative paths resolve against config_dir."""
    try:
        data = yaml.safe_load(_LOOSE_DIRECTIVE.sub("", text))
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {exc}") from None
    return validate(data, config_dir, overrides or {})


def validate(data: Any, config_dir: str, overrides: dict[str, Any]) -> RunSpec:
    top = _mapping(data, "", "the config must be a mapping with 'codes' and 'options'")
    _known_keys(top, {"codes", "options"}, "")
    if "codes" not in top:
        raise ConfigError("codes", "required: a list with one python code")
    options = dict(_mapping(top.get("options", {}), "options"))
    options.update(overrides)
    _known_keys(options, OPTIONS_KEYS, "options")
    code = _codes(top["codes"], config_dir)
    return _options(options, code, config_dir)


# -- codes -----------------------------------------------------------------


def _codes(value: Any, config_dir: str) -> PythonCode:
    if not isinstance(value, list) or not value:
        raise ConfigError("codes", "expected a non-empty list of codes")
    if len(value) > 1:
        raise ConfigError("codes", f"{len(value)} codes given; chains of codes are not supported yet (give one python code)")
    item = _mapping(value[0], "codes[0]")
    if len(item) != 1:
        raise ConfigError("codes[0]", "expected one key naming the code, e.g. 'python'")
    (kind, block), = item.items()
    path = f"codes[0].{kind}"
    if kind != "python":
        raise ConfigError(path, f"code {kind!r} is not supported by rsoptd (supported: python)")
    block = _mapping(block, path)
    _known_keys(block, CODE_KEYS, path)
    if "setup" not in block:
        raise ConfigError(f"{path}.setup", "required")
    settings = _settings(block.get("settings") or {}, f"{path}.settings")
    parameters = _parameters(block.get("parameters") or {}, f"{path}.parameters")
    return _setup(block["setup"], f"{path}.setup", config_dir, settings, parameters)


def _settings(value: Any, path: str) -> dict[str, Any]:
    settings = _mapping(value, path)
    for name in settings:
        _identifier(name, f"{path}.{name}")
    return dict(settings)


def _parameters(value: Any, path: str) -> tuple[Parameter, ...]:
    params = []
    for name, spec in _mapping(value, path).items():
        ppath = f"{path}.{name}"
        _identifier(name, ppath)
        spec = _mapping(spec, ppath, "expected a mapping with min, max and start")
        _known_keys(spec, PARAMETER_KEYS, ppath)
        for key in ("min", "max", "start"):
            if key not in spec:
                raise ConfigError(f"{ppath}.{key}", "required")
        lo, hi, start = (_number(spec[k], f"{ppath}.{k}") for k in ("min", "max", "start"))
        if lo > hi:
            raise ConfigError(f"{ppath}.min", f"min {lo} is greater than max {hi}")
        if not lo <= start <= hi:
            raise ConfigError(f"{ppath}.start", f"start {start} is outside [min, max] = [{lo}, {hi}]")
        samples = None
        if spec.get("samples") is not None:
            samples = _positive_int(spec["samples"], f"{ppath}.samples")
        params.append(Parameter(str(name), lo, hi, start, samples))
    return tuple(params)


def _setup(value: Any, path: str, config_dir: str, settings: dict[str, Any],
           parameters: tuple[Parameter, ...]) -> PythonCode:
    setup = _mapping(value, path)
    _known_keys(setup, SETUP_KEYS, path)
    for key in ("input_file", "function"):
        if key not in setup:
            raise ConfigError(f"{path}.{key}", "required")
    function = _string(setup["function"], f"{path}.function")
    input_file = _existing_file(setup["input_file"], f"{path}.input_file", config_dir)
    _check_defines(input_file, function, f"{path}.function")
    execution_type = _choice(setup.get("execution_type", "serial"), EXECUTION_TYPES, f"{path}.execution_type")
    mode = _choice(setup.get("serial_python_mode", "worker"), MODES, f"{path}.serial_python_mode")
    cores = _positive_int(setup.get("cores", 1), f"{path}.cores")
    timeout = None
    if setup.get("timeout") is not None:
        timeout = _number(setup["timeout"], f"{path}.timeout")
        if timeout <= 0:
            raise ConfigError(f"{path}.timeout", f"expected a positive number of seconds, got {timeout}")
    env = _mapping(setup.get("environment_variables") or {}, f"{path}.environment_variables")
    # force_executor is accepted and needs nothing: 'parallel' always means an MPI launch here
    return PythonCode(
        input_file=input_file,
        function=function,
        execution_type=execution_type,
        mode=mode,
        cores=cores,
        timeout=timeout,
        preprocess=_function_ref(setup.get("preprocess"), f"{path}.preprocess", config_dir),
        postprocess=_function_ref(setup.get("postprocess"), f"{path}.postprocess", config_dir),
        environment={str(k): str(v) for k, v in env.items()},
        settings=settings,
        parameters=parameters,
    )


# -- options ---------------------------------------------------------------


def _options(options: dict[str, Any], code: PythonCode, config_dir: str) -> RunSpec:
    software = _string(options.get("software", ""), "options.software")
    if software not in OPTIMIZERS:
        _choice(software, SAMPLERS + optimizers.SUPPORTED, "options.software")
    exit_criteria = _mapping(options.get("exit_criteria") or {}, "options.exit_criteria")
    _known_keys(exit_criteria, EXIT_KEYS, "options.exit_criteria")
    sim_max = exit_criteria.get("sim_max")
    if sim_max is not None:
        sim_max = _positive_int(sim_max, "options.exit_criteria.sim_max")
    wallclock, stop_val = _wallclock_and_stop_val(exit_criteria)
    objective = _function_ref(options.get("objective_function"), "options.objective_function", config_dir)
    run_dir = options.get("run_dir") or "ensemble"
    run_dir = os.path.normpath(os.path.join(config_dir, _string(run_dir, "options.run_dir")))
    mesh_file = None
    if options.get("mesh_file") is not None:
        mesh_file = _existing_file(options["mesh_file"], "options.mesh_file", config_dir)
    batch_size = None
    if options.get("batch_size") is not None:
        batch_size = _positive_int(options["batch_size"], "options.batch_size")
    sim_dirs = options.get("sim_dirs_make")
    if sim_dirs is not None and not isinstance(sim_dirs, bool):
        raise ConfigError("options.sim_dirs_make", f"expected true or false, got {sim_dirs!r}")
    software_options = _mapping(options.get("software_options") or {}, "options.software_options")
    # rsopt's own quickstart puts its history-dump interval here; it is rsopt's, not the optimizer's
    software_options = {k: v for k, v in software_options.items() if k not in RSOPT_SOFTWARE_OPTIONS}
    method, returns = options.get("method"), "float"
    if software in OPTIMIZERS:
        method, returns = _check_optimizer(software, method, software_options, code, exit_criteria)
    components = None
    if options.get("components") is not None:
        components = _positive_int(options["components"], "options.components")
    if code.execution_type == "parallel" and objective is None:
        raise ConfigError("options.objective_function", "required with execution_type: parallel: MPI ranks cannot "
                          "return a value, so give [file.py, function] that reads what the function wrote and returns f")
    spec = RunSpec(
        code=code,
        software=software,
        method=method,
        software_options=dict(software_options),
        nworkers=_positive_int(options.get("nworkers", DEFAULT_NWORKERS), "options.nworkers"),
        sim_max=sim_max,
        objective=objective,
        run_dir=run_dir,
        seed=_seed(options),
        sim_dirs=bool(sim_dirs),
        mesh_file=mesh_file,
        batch_size=batch_size,
        config_dir=config_dir,
        elapsed_wallclock_time=wallclock,
        stop_val=stop_val,
        components=components,
        returns=returns,
        launcher=_launcher(options.get("mpi_launcher"), config_dir),
    )
    _check_sampler(spec)
    return spec


def _launcher(value: Any, config_dir: str) -> Launcher | None:
    if value is None:
        return None
    path = "options.mpi_launcher"
    launcher = _mapping(value, path, "expected a mapping with command and args, e.g. {command: srun, args: [--mpi=pmix]}")
    _known_keys(launcher, LAUNCHER_KEYS, path)
    command = os.path.expanduser(_string(launcher.get("command", "mpiexec"), f"{path}.command"))
    if os.sep in command:  # a path, not a name to look up on PATH
        command = os.path.normpath(os.path.join(config_dir, command))
    args = launcher.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args):
        raise ConfigError(f"{path}.args", f"expected a list of strings, got {_show(args)}")
    return Launcher(command, tuple(str(a) for a in args))


def _wallclock_and_stop_val(criteria: dict[str, Any]) -> tuple[float | None, float | None]:
    wallclock = None
    if criteria.get("elapsed_wallclock_time") is not None:
        wallclock = _number(criteria["elapsed_wallclock_time"], "options.exit_criteria.elapsed_wallclock_time")
        if wallclock <= 0:
            raise ConfigError("options.exit_criteria.elapsed_wallclock_time", f"expected a positive number of seconds, got {wallclock}")
    stop_val = None
    if criteria.get("stop_val") is not None:
        value = criteria["stop_val"]
        path = "options.exit_criteria.stop_val"
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(path, f"expected [f, value] (stop once f is below value), got {_show(value)}")
        if value[0] != "f":
            raise ConfigError(f"{path}[0]", f"rsoptd records one field, f; got {_show(value[0])}")
        stop_val = _number(value[1], f"{path}[1]")
    return wallclock, stop_val


def _check_optimizer(software: str, method: Any, software_options: dict[str, Any], code: PythonCode,
                     exit_criteria: dict[str, Any]) -> tuple[str, str]:
    """(method, what the function returns); the optimizer library is looked up, never imported."""
    if not any(exit_criteria.get(k) is not None for k in ("sim_max", "elapsed_wallclock_time", "stop_val")):
        raise ConfigError("options.exit_criteria", "required for optimizers, as in rsopt: give sim_max, "
                          "elapsed_wallclock_time or stop_val: [f, value]")
    if not code.parameters:
        raise ConfigError("codes[0].python.parameters", f"{software} needs at least one parameter to optimize")
    return optimizers.check(software, method, software_options)


def _seed(options: dict[str, Any]) -> int | None:
    if "seed" not in options or options["seed"] == "":
        return DEFAULT_SEED
    seed = options["seed"]
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("options.seed", f"expected a non-negative integer, '' (fixed) or an empty value (random), got {seed!r}")
    return seed


def _check_sampler(spec: RunSpec) -> None:
    params = spec.code.parameters
    if spec.software == "mesh_scan" and spec.mesh_file is None:
        for p in params:
            if p.samples is None:
                raise ConfigError(f"codes[0].python.parameters.{p.name}.samples", "required for mesh_scan (or give options.mesh_file)")
    if spec.software == "lh_scan":
        if spec.batch_size is None:
            raise ConfigError("options.batch_size", "required for lh_scan: the number of points")
        if not params:
            raise ConfigError("codes[0].python.parameters", "lh_scan needs at least one parameter")


# -- primitives ------------------------------------------------------------


def _mapping(value: Any, path: str, expected: str = "expected a mapping") -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"{expected}, got {_show(value)}")
    return value


def _known_keys(mapping: dict[Any, Any], allowed: set[str], path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(where, f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _choice(value: Any, choices: tuple[str, ...], path: str) -> str:
    if value not in choices:
        raise ConfigError(path, f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"expected a non-empty string, got {_show(value)}")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, str):
        try:  # YAML 1.1 reads 1e-6 as a string; rsopt accepts it as a number
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {_show(value)}")
    return float(value)


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(path, f"expected a positive integer, got {_show(value)}")
    return value


def _identifier(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(path, f"{name!r} is not a valid Python keyword-argument name")


def _existing_file(value: Any, path: str, config_dir: str) -> str:
    name = os.path.expanduser(_string(value, path))
    full = os.path.normpath(os.path.join(config_dir, name))
    if not os.path.isfile(full):
        raise ConfigError(path, f"file not found: {full}")
    return full


def _function_ref(value: Any, path: str, config_dir: str) -> FunctionRef | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(path, f"expected [file.py, function_name], got {_show(value)}")
    file = _existing_file(value[0], f"{path}[0]", config_dir)
    name = _string(value[1], f"{path}[1]")
    _check_defines(file, name, f"{path}[1]")
    return FunctionRef(file, name)


def _check_defines(file: str, name: str, path: str) -> None:
    """The file must define (or import) `name` at top level; read, never executed."""
    try:
        tree = ast.parse(Path(file).read_bytes(), filename=file)
    except SyntaxError as exc:
        raise ConfigError(path, f"{file} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(path, f"cannot read {file}: {exc}") from None
    if name not in _top_level_names(tree):
        raise ConfigError(path, f"no function {name!r} defined in {file}")


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
            if any(a.name == "*" for a in node.names):
                names.add(_STAR)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    if _STAR in names:  # a star import may bring anything in; trust it
        return _Everything()
    return names


_STAR = "*"


class _Everything(set[str]):
    def __contains__(self, item: object) -> bool:
        return True


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
