"""The model references inside a MergeKit recipe: listed, or rewritten (made absolute/relative).

Bottom layer: the config resolves a recipe's relative paths with it, and the outputs write
them back relative to where the user runs ``mergekit-yaml``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def recipe_models(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field path, model)`` of every model a recipe reads (base, models, slices)."""
    out: list[tuple[str, str]] = []
    if isinstance(recipe.get("base_model"), str):
        out.append(("base_model", recipe["base_model"]))
    for i, m in enumerate(recipe.get("models") or []):
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            out.append((f"models.{i}.model", m["model"]))
    for j, sl in enumerate(recipe.get("slices") or []):
        for i, m in enumerate((sl or {}).get("sources") or []):
            if isinstance(m, dict) and isinstance(m.get("model"), str):
                out.append((f"slices.{j}.sources.{i}.model", m["model"]))
    return out


def map_models(recipe: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``recipe`` with ``fn`` applied to every model path (and a path tokenizer).

    Covers the ``models:`` and ``slices:`` forms and ``ps_dfs``'s ``modules:`` and
    ``dfs_models``; ``fn`` must leave names that are not paths (``ps``) alone.
    """
    doc = copy.deepcopy(recipe)
    if isinstance(doc.get("base_model"), str):
        doc["base_model"] = fn(doc["base_model"])
    tok = doc.get("tokenizer_source")
    if isinstance(tok, str) and tok not in ("base", "union"):
        doc["tokenizer_source"] = fn(tok)
    blocks = list(doc.get("models") or [])
    for sl in doc.get("slices") or []:
        blocks += list((sl or {}).get("sources") or [])
    for mod in (doc.get("modules") or {}).values():  # ps_dfs with several PS stages
        blocks += list((mod or {}).get("models") or [])
    params = doc.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("dfs_models"), list):  # ps_dfs
        stages = {"ps", *(doc.get("modules") or {})}  # PS stage names, not paths
        params["dfs_models"] = [
            fn(p) if isinstance(p, str) and p not in stages else p for p in params["dfs_models"]
        ]
    for m in blocks:
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            m["model"] = fn(m["model"])
    return doc


def local_reference(relative: str) -> str:
    """A relative local path as MergeKit cannot mistake it for a hub repo: ``./models/math``.

    MergeKit's model card asks the hub about any existing path with at most one ``/`` that
    does not start with ``/``, ``~`` or ``.`` (``mergekit/card.py``, ``is_hf``): offline,
    ``mergekit-yaml`` then fails; online it is a network call that may name a stranger's repo
    in the card.  ``./`` (or ``../``) in front makes the path plainly local."""
    if relative in (".", "") or relative.startswith(("./", "../", "/", "~")):
        return relative or "."
    return f"./{relative}"


def portable(path: str, root: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to ``root`` (default: the working directory) when it lies inside it,
    as ``./sub/folder`` (:func:`local_reference`).

    Outputs (``best.yml``, trial YAMLs, the model card) use this so that they carry no
    machine's absolute paths for models under the folder the search runs in, and
    ``mergekit-yaml best.yml`` still finds them from there (offline too); anything else stays
    as given.
    """
    if not os.path.isabs(path):
        return path
    base = Path(root or os.getcwd()).resolve()
    try:
        return local_reference(str(Path(path).resolve().relative_to(base)))
    except ValueError:
        return path


def portable_recipe(recipe: dict[str, Any], root: str | os.PathLike[str] | None = None) -> dict:
    """A copy of ``recipe`` with :func:`portable` model paths."""
    return map_models(recipe, lambda p: portable(p, root))
