"""mergekit-evo: evolutionary model merging (PS, DFS, PS+DFS) on top of MergeKit.

Kept import-light on purpose: the ``.pth`` hook imports ``mergekit_evo._hook`` at every
Python start, which imports this module first.
"""

__version__ = "0.1.0"
