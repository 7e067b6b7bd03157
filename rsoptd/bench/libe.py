"""The libEnsemble floor: the same trivial function on 2 workers, as rsopt runs it.

    python -m rsoptd.bench.libe N      # prints {"rate": evaluations per second}, first start to last end

Run in a scratch directory of its own (libEnsemble writes ensemble.log and libE_stats.txt
there).  The generator runs on the manager and hands out all N points of a mesh at once, so
the 2 workers only evaluate: the most favourable set-up libEnsemble offers for a scan.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def mesh(H: Any, persis_info: Any, gen_specs: Any, _: Any) -> tuple[Any, Any]:
    n = gen_specs["user"]["n"]
    out = np.zeros(n, dtype=gen_specs["out"])
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    out["x"][:, 0] = (i // side) / side
    out["x"][:, 1] = (i % side) / side
    return out, persis_info


def trivial(H: Any, persis_info: Any, sim_specs: Any, _: Any) -> tuple[Any, Any]:
    out = np.zeros(1, dtype=sim_specs["out"])
    x, y = H["x"][0]
    out["f"] = x * y
    return out, persis_info


def run(n: int) -> float:
    from libensemble.libE import libE
    from libensemble.tools import add_unique_random_streams

    sim_specs = {"sim_f": trivial, "in": ["x"], "out": [("f", float)]}
    gen_specs = {"gen_f": mesh, "out": [("x", float, (2,))], "user": {"n": n}}
    libE_specs = {"nworkers": 2, "comms": "local", "gen_on_manager": True, "save_every_k_sims": 0,
                  "disable_log_files": True}
    H, _, flag = libE(sim_specs, gen_specs, {"sim_max": n}, add_unique_random_streams({}, 3),
                      libE_specs=libE_specs)
    assert flag == 0 and H["sim_ended"].sum() == n, (flag, H["sim_ended"].sum())
    done = H[H["sim_ended"]]
    return n / float(done["sim_ended_time"].max() - done["sim_started_time"].min())


if __name__ == "__main__":
    print(json.dumps({"rate": run(int(sys.argv[1]))}))
