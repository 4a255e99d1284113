"""Planted-recipe benchmark: a merge problem whose optimum is known by construction.

Sources are a shared base plus random task vectors (:mod:`~mergekit_evo.planted.models`); a
hidden target is merged from them by a known recipe (:mod:`~mergekit_evo.planted.recipes`); the
fitness is the log-likelihood of text *sampled* from the target, written as an lm-eval task
(:mod:`~mergekit_evo.planted.task`).  Its expectation is -H(target) - KL(target || candidate),
maximised exactly at the planted recipe (Gibbs' inequality).  Import submodules directly; this
package imports nothing heavy.
"""
