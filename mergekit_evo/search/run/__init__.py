"""One whole search: set-up, baselines, the stages in order, the results written out.

Top of ``search/``: may import ``stage/``, ``fleet/``, ``scoring/`` and ``rundir/``; nothing
below imports it.
"""
