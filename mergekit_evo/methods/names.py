"""Names of the merge methods mergekit-evo adds to MergeKit (imported by every other module here,
imports nothing: the one place a method name lives, so no module needs ``install`` for it)."""

from __future__ import annotations

#: methods planned as a whole model (they change depth), never per tensor
WHOLE_MODEL_METHODS = ("dfs", "ps_dfs")
