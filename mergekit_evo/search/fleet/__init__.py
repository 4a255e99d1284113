"""The processes that share one study: storage and heartbeats, who works on it, the shared
budget, dead trials re-asked, one worker per GPU.

Imports ``scoring/`` and ``rundir/``, never ``stage/`` or ``run/``.
"""
