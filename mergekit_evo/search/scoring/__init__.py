"""A candidate -> a fitness (lm-eval tasks or a Python function), and what happens when that
fails (failed trials in a row, out of memory).

Bottom of ``search/``: imports no other part of it.
"""
