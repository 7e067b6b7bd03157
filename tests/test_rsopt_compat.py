"""Configs written for rsopt itself, in the shapes its own examples use, run unchanged."""

from __future__ import annotations

CAMEL = """
def six_hump_camel_func(x, y):
    return (4 - 2.1 * x ** 2 + x ** 4 / 3) * x ** 2 + x * y + (-4 + 4 * y ** 2) * y ** 2

def rosenbrock(x, y, a):
    return (a - x) ** 2 + 100 * (y - x ** 2) ** 2
"""

QUICKSTART = """codes:
  - python:
      parameters:
        x:
          min: -3.
          max: 3.
          start: 0.08
        y:
          min: -2.
          max: 2.
          start: -0.7
      setup:
        input_file: functions.py
        function: six_hump_camel_func
        execution_type: serial
options:
  software: nlopt
  method: LN_BOBYQA
  software_options: {'xtol_abs': 1e-6,
                     'ftol_abs': 1e-6,
                     'record_interval': 2}
  exit_criteria:
    sim_max: 30
  use_worker_dirs: False
"""

SCAN_WITH_LOOSE_DIRECTIVE = """% YAML 1.1
codes:
    - python:
        settings:
            a: 1.0
        parameters:
            x: 
                min: -2            
                max:  2            
                start: 1.2  
                samples: 5
            y:             
                min: -1            
                max:  3           
                start: 1.9 
                samples: 5
        setup:           
            input_file: functions.py   
            function: rosenbrock
            execution_type: serial
options:
    software: mesh_scan
    nworkers: 4
    run_dir: scan_rosenbrock
"""


def test_rsopt_quickstart_config_as_rsopt_ships_it(daemon, project):
    project.function(CAMEL)
    config = project.root / "rsopt_example.yml"
    config.write_text(QUICKSTART)
    status = daemon.json("optimize", "configuration", str(config))
    assert status["state"] == "completed"
    # rsopt 20251216 stops here after 19 evaluations at -1.0316284450
    assert status["done"] == 19 and abs(status["best"]["f"] - -1.031628445) < 1e-8


def test_a_scan_starting_with_a_loose_yaml_directive_and_more_workers_than_slots(daemon, project):
    project.function(CAMEL)
    config = project.root / "config_scan.yml"
    config.write_text(SCAN_WITH_LOOSE_DIRECTIVE)
    status = daemon.run(config)
    assert status["state"] == "completed" and status["done"] == 25
    assert status["run_dir"] == str(project.root / "scan_rosenbrock")
    assert status["best"]["f"] == 0.0 and status["best"]["x"] == {"x": 1.0, "y": 1.0}
