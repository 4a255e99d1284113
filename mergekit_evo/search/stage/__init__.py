"""One stage of a search: its Optuna study, the ask/tell loop, the DFS polish, when it stops.

Imports ``fleet/``, ``scoring/`` and ``rundir/``, never ``run/``.
"""
