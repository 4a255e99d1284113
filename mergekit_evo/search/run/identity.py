"""What makes two runs of one run directory the same search, and which fields a run may change.

A rerun resumes the study in RUN_DIR, so it must propose from the same space with the same
sampler; budget, storage, device, report and baselines may change (they steer or report the
search, they do not define it).  CLI flags override exactly such fields (plus the seed, which
does define a new search and is then checked like any other field).
"""

from __future__ import annotations

from typing import Any

import yaml

from mergekit_evo.config import ConfigError, SearchConfig, parse_search_config
from mergekit_evo.search.rundir.files import RunDir

#: config fields that may change between runs of one search (everything else must match)
MUTABLE = (
    "budget",
    "storage",
    "device",
    "candidates",
    "report",
    "baselines",
    "trust_remote_code",
)

#: config sections a mode never reads: a change there (e.g. a new DFS default) is no new search
UNUSED_BY_MODE = {"ps": ("dfs", "ps_dfs"), "dfs": ("ps", "ps_dfs"), "ps_dfs": ()}


def apply_overrides(
    cfg: SearchConfig,
    *,
    max_trials: int | None = None,
    device: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    trust_remote_code: bool | None = None,
) -> SearchConfig:
    """CLI flags win over the config file; they are validated as the file's fields are
    (``--max-trials 0`` is ``budget.max_trials: ...``, a :class:`ConfigError`)."""
    upd: dict[str, Any] = {}
    if trust_remote_code:
        upd["trust_remote_code"] = True
    if max_trials is not None:
        upd["budget"] = {**cfg.budget.model_dump(exclude_unset=True), "max_trials": max_trials}
    if device is not None:
        upd["device"] = device
    if storage is not None:
        upd["storage"] = storage
    if seed is not None:
        upd["optimizer"] = {**cfg.optimizer.model_dump(exclude_unset=True), "seed": seed}
    if not upd:
        return cfg
    # unset fields stay unset (a recipe-shaped PS space refuses options the user set)
    return parse_search_config({**cfg.model_dump(exclude_unset=True), **upd})


def identity(cfg: SearchConfig) -> dict[str, Any]:
    """The config fields that define the search (compared on resume)."""
    d = cfg.model_dump(mode="json")
    for k in (*MUTABLE, *UNUSED_BY_MODE[cfg.mode]):
        d.pop(k, None)
    return d


def check_same_search(rundir: RunDir, cfg: SearchConfig) -> None:
    """Refuse to resume a run directory with a different search in it."""
    if not rundir.config.exists():
        return
    try:
        old = parse_search_config(yaml.safe_load(rundir.config.read_text()))
    except (ConfigError, yaml.YAMLError) as e:
        raise ConfigError(
            [("<run>", f"{rundir.config} cannot be read back ({e}); use a new --out")]
        ) from None
    a, b = identity(old), identity(cfg)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise ConfigError(
            [
                (
                    k,
                    f"differs from the search already in {rundir.root} (config.yml); "
                    "use a new --out or the same config",
                )
                for k in diff
            ]
        )
