"""rsoptd's benchmark: each path of the daemon beside the plain-Python floor it is measured against.

Run ``python -m rsoptd.bench`` (``--quick`` for a short pass, ``--smoke`` for the smallest
sizes, as the tests do).  Modules: ``floors`` (plain-Python floors, each run in a lean child),
``libe`` (the libEnsemble floor, optional), ``daemon`` (a private rsoptd driven through
rsoptctl), ``rows`` (what each row measures), ``table`` (statistics, the table and the JSON).
"""
