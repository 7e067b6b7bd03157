"""Bad configs are refused at submit time with the key path and what was expected; nothing is queued."""

from __future__ import annotations

import pytest
import yaml

GOOD = "def f(x, y):\n    return x + y\n"


def _edit(config, edit):
    data = yaml.safe_load(config.read_text())
    edit(data)
    config.write_text(yaml.safe_dump(data))
    return config


def _setup(data):
    return data["codes"][0]["python"]["setup"]


def _params(data):
    return data["codes"][0]["python"]["parameters"]


CASES = [
    (lambda d: _setup(d).update(serial_python_mode="proces"),
     "codes[0].python.setup.serial_python_mode: 'proces' is not one of worker, thread, process"),
    (lambda d: _setup(d).update(bogus=1), "codes[0].python.setup.bogus: unknown key"),
    (lambda d: _setup(d).update(input_file="missing.py"), "codes[0].python.setup.input_file: file not found"),
    (lambda d: _setup(d).update(function="nope"), "codes[0].python.setup.function: no function 'nope' defined in"),
    (lambda d: _setup(d).update(timeout=-1), "codes[0].python.setup.timeout: expected a positive number"),
    (lambda d: _setup(d).update(preprocess=["functions.py"]), "codes[0].python.setup.preprocess: expected [file.py, function_name]"),
    (lambda d: _params(d)["x"].update(min=2.0, max=1.0, start=1.5), "codes[0].python.parameters.x.min: min 2.0 is greater than max 1.0"),
    (lambda d: _params(d)["x"].pop("start"), "codes[0].python.parameters.x.start: required"),
    (lambda d: _params(d)["x"].update(min="low"), "codes[0].python.parameters.x.min: expected a finite number, got 'low'"),
    (lambda d: _params(d)["x"].pop("samples"), "codes[0].python.parameters.x.samples: required for mesh_scan"),
    (lambda d: _params(d)["x"].update(samples=0), "codes[0].python.parameters.x.samples: expected a positive integer, got 0"),
    (lambda d: d["options"].update(nworkers="two"), "options.nworkers: expected a positive integer, got 'two'"),
    (lambda d: d["options"].update(software="grid"), "options.software: 'grid' is not one of mesh_scan, lh_scan, start"),
    (lambda d: d["options"].update(software="lh_scan"), "options.batch_size: required for lh_scan"),
    (lambda d: d["options"].update(objective_function=["nothere.py", "obj"]), "options.objective_function[0]: file not found"),
    (lambda d: d["options"].update(exit_criteria={"sim_maximum": 3}), "options.exit_criteria.sim_maximum: unknown key"),
    (lambda d: d["options"].update(colour="blue"), "options.colour: unknown key"),
    (lambda d: d["options"].update(seed=-3), "options.seed: expected a non-negative integer"),
    (lambda d: d.update(codes=[{"elegant": {"setup": {}}}]), "codes[0].elegant: code 'elegant' is not supported by rsoptd"),
    (lambda d: d.update(codes=[]), "codes: expected a non-empty list of codes"),
    (lambda d: d.pop("codes"), "codes: required"),
]


@pytest.mark.parametrize("edit,message", CASES)
def test_config_errors_name_the_key(daemon, project, edit, message):
    project.function(GOOD)
    config = _edit(project.config("f"), edit)
    result = daemon.ctl("submit", str(config), check=False)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert daemon.json("list") == []  # nothing was queued


def test_yaml_syntax_errors_and_missing_files_are_usage_errors(daemon, project):
    bad = project.root / "bad.yml"
    bad.write_text("codes: [\n  - python: {")
    result = daemon.ctl("submit", str(bad), check=False)
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    result = daemon.ctl("submit", str(project.root / "absent.yml"), check=False)
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_a_syntax_error_in_the_function_file_is_reported_with_its_line(daemon, project):
    project.function("def f(x, y):\n    return (x +\n")
    result = daemon.ctl("submit", str(project.config("f")), check=False)
    assert result.returncode == 2
    assert "codes[0].python.setup.function:" in result.stderr and "syntax error at line" in result.stderr


def test_functions_are_checked_without_running_the_users_file(daemon, project, short_tmp):
    marker = short_tmp / "ran"
    project.function(f"open({str(marker)!r}, 'w').close()\ndef f(x, y):\n    return 0.0\n")
    _edit(project.config("f"), lambda d: d["options"].update(software="nope"))
    assert daemon.ctl("submit", str(project.root / "config.yml"), check=False).returncode == 2
    assert not marker.exists()


def test_relative_paths_resolve_against_the_configs_directory(daemon, project, short_tmp):
    project.function(GOOD)
    config = project.config("f")
    status = daemon.json("submit", str(config), "--wait", cwd=short_tmp)
    assert status["state"] == "completed"
    assert status["run_dir"] == str(project.root / "ensemble")
