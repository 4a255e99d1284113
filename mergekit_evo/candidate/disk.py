"""Build candidates through disk: ``merge_recipe`` into a scratch folder, then load it.

Slow but exact: the model scored is byte for byte what ``mergekit-yaml`` writes for the same
YAML (same ``--random-seed`` for DARE-style methods), which is what makes ``best.yml``
reproducible.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mergekit_evo.candidate.base import Candidate, CandidateBuilder

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class DiskCandidateBuilder(CandidateBuilder):
    """MergeKit on disk + ``AutoModelForCausalLM.from_pretrained``."""

    def __init__(
        self,
        device: str = "cpu",
        dtype: str = "float32",
        random_seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.random_seed = random_seed
        self.trust_remote_code = trust_remote_code

    def merge_options(self) -> Any:
        from mergekit.options import MergeOptions

        return MergeOptions(
            random_seed=self.random_seed,
            device=self.device if self.device != "cpu" else None,
            cuda=self.device.startswith("cuda"),
            copy_tokenizer=True,
            write_model_card=False,
            quiet=True,
            lazy_unpickle=False,
            trust_remote_code=self.trust_remote_code,
        )

    def merge(self, recipe: dict[str, Any], out: Path) -> Path:
        """Run the recipe into ``out`` (replaced if present)."""
        from mergekit_evo.methods import merge_recipe

        if out.exists():
            shutil.rmtree(out)
        # ps_dfs evicts MergeKit's cached loaders for its scratch stages itself
        return Path(merge_recipe(recipe, out, options=self.merge_options()))

    def build(self, recipe: dict[str, Any], workdir: Path) -> Candidate:
        out = self.merge(recipe, workdir / "model")
        cand = self.load(str(out))
        cand.path = out
        return cand

    def release(self, candidate: Candidate) -> None:
        """Drop the model and give its accelerator memory back before the next candidate."""
        super().release(candidate)
        if self.device.startswith("cuda"):
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()

    def load(self, model_path: str) -> Candidate:
        import torch
        import transformers

        trust = self.trust_remote_code
        model = transformers.AutoModelForCausalLM.from_pretrained(
            model_path, dtype=getattr(torch, _DTYPES[self.dtype]), trust_remote_code=trust
        )
        model.to(self.device)
        model.eval()
        tok = transformers.AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust)
        return Candidate(model=model, tokenizer=tok, path=None)
