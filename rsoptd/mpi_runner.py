"""The fixed program every MPI rank runs: ``python -m rsoptd.mpi_runner SIM_DIR``.

It reads the evaluation as data from ``SIM_DIR/rsoptd-job.json`` (written by
the daemon, see rsoptd.mpi), imports the user's ``input_file`` and calls
``function(**inputs)``.  No source code is generated, unlike rsopt, so a
string setting holding quotes, newlines or code arrives as it is and runs
nothing.  Nothing is returned: as in rsopt, the function writes files and
``options.objective_function`` reads them afterwards.

Imports only what every rank needs, and only what loads fast (each rank of
each evaluation pays for it): json and rsoptd.loader; mpi4py is touched only
if the function imported it.
"""

from __future__ import annotations

import json
import os
import sys

from rsoptd.loader import Loader

TYPE_CHECKING = False  # typing itself costs each rank milliseconds
if TYPE_CHECKING:
    from typing import Any

JOB_FILE = "rsoptd-job.json"
FAILED = 1
WRONG_SIZE = 3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rsoptd.mpi_runner SIM_DIR", file=sys.stderr)
        return 2
    with open(os.path.join(args[0], JOB_FILE), encoding="utf-8") as fh:
        job = json.load(fh)
    # Whole lines, as they are printed: they reach the files and `logs -f` while the job
    # runs, survive a kill, and lines of different ranks do not cut into each other (as
    # they would with PYTHONUNBUFFERED, where print writes text and newline separately).
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    try:
        function = Loader().function((job["function"][0], job["function"][1]))
        function(**job["inputs"])
    except Exception:
        import traceback

        traceback.print_exc()
        _abort(FAILED)
        return FAILED
    return _check_size(job["ranks"])


def _mpi() -> Any:
    """mpi4py's MPI module if the user's code initialised MPI (and has not finalised it), else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return None
    return mpi


def _abort(code: int) -> None:
    # Other ranks may wait in a collective for this one: end the whole job now
    # rather than let mpi4py's MPI_Finalize at exit hang until the timeout.
    mpi = _mpi()
    if mpi is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


def _check_size(ranks: int) -> int:
    # A launcher from another MPI than mpi4py's starts K separate 1-rank jobs
    # that each believe they are rank 0: fail loudly instead of writing wrong files.
    mpi = _mpi()
    if mpi is None:
        return 0
    size = mpi.COMM_WORLD.Get_size()
    if size == ranks:
        return 0
    library = mpi.Get_library_version().strip().splitlines()[0]
    print(f"rsoptd: MPI.COMM_WORLD has {size} rank(s) but cores is {ranks}: the launcher does not match "
          f"the MPI library mpi4py uses ({library}); set options.mpi_launcher", file=sys.stderr)
    return WRONG_SIZE


if __name__ == "__main__":
    sys.exit(main())
