"""Lazy registration of mergekit-evo's merge methods inside MergeKit.

MergeKit has no plugin discovery, and importing MergeKit eagerly costs every Python
start ~2 s.  This module is imported from a ``.pth`` file and only installs a
``sys.meta_path`` finder; the finder runs :func:`mergekit_evo.methods.install` right after
``mergekit.merge_methods.registry`` (method registry) and ``mergekit.merge`` (``run_merge``)
finish executing (and after ``mergekit.config``, to accept ``scales: [[...]]``), so plain
``mergekit-yaml`` sees ``dfs`` and ``ps_dfs``.  After ``lm_eval.models`` it adds the lm-eval model
``mergekit_evo`` as a lazy placeholder (lm-eval's own mechanism for its built-in models), so
``lm_eval --model mergekit_evo`` works and nothing heavy is imported until it is asked for.
"""

from __future__ import annotations

import importlib.machinery  # cheap: part of the import system itself
import sys

_TRIGGERS = ("mergekit.config", "mergekit.merge_methods.registry", "mergekit.merge")
_LM_EVAL_MODELS = "lm_eval.models"
_LM_EVAL_MODEL = ("mergekit_evo", "mergekit_evo.fitness.fast_lm:EngineLM")


class _AfterImport:
    """Loader wrapper (duck-typed: ``importlib.abc`` costs ~25 ms to import at start-up)."""

    def __init__(self, inner, name: str) -> None:
        self._inner = inner
        self._name = name

    def __getattr__(self, name: str):  # get_source, get_resource_reader, ...: the real loader's
        return getattr(self._inner, name)

    def create_module(self, spec):  # noqa: D102 - loader protocol
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: D102 - loader protocol
        self._inner.exec_module(module)
        if self._name == _LM_EVAL_MODELS:
            from lm_eval.api.registry import model_registry

            name, target = _LM_EVAL_MODEL
            if name not in model_registry:
                model_registry.register(name, target=target)
            return
        from mergekit_evo.methods.install import on_mergekit_import

        on_mergekit_import(self._name)


class _MergeKitFinder:
    def find_spec(self, fullname, path, target=None):  # noqa: D102 - finder protocol
        if fullname not in _TRIGGERS and fullname != _LM_EVAL_MODELS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _AfterImport(spec.loader, fullname)
        return spec


def install_finder() -> None:
    """Install the finder once; a no-op when MergeKit was already imported."""
    if any(isinstance(f, _MergeKitFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _MergeKitFinder())


install_finder()
