"""Candidates built in accelerator memory: PS merged in place, DFS routed over resident layers.

Every source model is loaded once (a Hugging Face module on the device, its tensors shared by
the merge and by DFS routes).  A PS candidate is MergeKit's own plan of the recipe
(:mod:`.planning`) written into one working model, no disk: for the task-arithmetic family and
``linear`` by :mod:`.batched` (a layer group per kernel call, parameters resolved without
re-planning, no host sync), for every other method by running each tensor's
``ExecuteMergeMethodTask`` on the resident tensors.  A DFS candidate is a
:class:`~mergekit_evo.engine.LayerStack` over the resident layers (model A's embeddings, norm and
head; a scale per hop): no weight is copied, and its logits equal the materialised ``dfs``
model's.  ``ps_dfs`` (one PS stage) merges the stage in place and routes over the working model
and the partner.  Loaded models get fused q/k/v and gate/up buffers that their parameters alias
(:func:`~mergekit_evo.engine.fused.fuse_model`), so merges write what the decoder reads.

Numerics equal MergeKit's for deterministic methods.  DARE and DELLA draw their masks on the
device (whole layer groups at once in :mod:`.batched`), seeded per candidate, which is not the
stream of a ``mergekit-yaml --random-seed`` run: :attr:`exact_for` says so, and the search
re-scores the champion rebuilt by MergeKit (``best.yml``) at the end and reports both numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mergekit_evo.candidate.base import Candidate, CandidateBuilder
from mergekit_evo.candidate.disk import DiskCandidateBuilder

log = logging.getLogger(__name__)

#: sparsification that draws random masks (their in-memory masks differ from a CPU merge's)
STOCHASTIC_METHODS = ("dare_ties", "dare_linear", "della", "della_linear")


def _fuse(model: Any) -> None:
    """Fuse q/k/v and gate/up in place (:func:`~mergekit_evo.engine.fused.fuse_model`), so
    the decoder's fused matrices are the very tensors merges write: never stale."""
    from mergekit_evo.engine import supports
    from mergekit_evo.engine.fused import fuse_model

    if supports(model):
        fuse_model(model)


class InMemoryUnsupported(ValueError):
    """A recipe the resident builder cannot build in memory (the disk builder can)."""


class ResidentCandidateBuilder(CandidateBuilder):
    """Sources resident once on ``device``; candidates written into them, never to disk."""

    def __init__(
        self,
        device: str = "cuda",
        dtype: str = "bfloat16",
        random_seed: int = 0,
        trust_remote_code: bool = False,
        batched: bool = True,
    ) -> None:
        """``batched``: merge the methods :mod:`.batched` covers with its kernels (False: run
        MergeKit's per-tensor tasks for every method, the reference the tests compare with)."""
        from mergekit_evo.candidate.batched import BatchedMerger

        self.device = device
        self.dtype = dtype
        self.random_seed = random_seed
        self.trust_remote_code = trust_remote_code
        self.disk = DiskCandidateBuilder(device, dtype, random_seed, trust_remote_code)
        self._sources: dict[str, Any] = {}  # absolute path -> HF model on the device
        self._tokenizers: dict[str, Any] = {}
        self._working: Any = None  # the model PS candidates are written into
        self._working_from: str | None = None
        self._working_params: dict[str, torch.Tensor] = {}
        self.batched = batched
        self._batcher = BatchedMerger(self._raw_tensor, device)
        self.last_merge_s = 0.0  # whole in-place merge (planning included), synchronised
        self.last_plan_s = 0.0  # of which: planning / parameter resolution (host only)
        self.last_merge_path = ""  # "batched" or "tasks" (MergeKit's per-tensor tasks)
        self.last_setup_s = 0.0  # DFS route set-up

    # ------------------------------------------------------------------ resident models
    def _torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def source(self, path: str) -> Any:
        """The resident model of ``path`` (loaded on first use)."""
        key = str(Path(path).resolve()) if Path(path).exists() else path
        model = self._sources.get(key)
        if model is None:
            import transformers

            model = transformers.AutoModelForCausalLM.from_pretrained(
                key,
                dtype=self._torch_dtype(),
                device_map=self.device,
                trust_remote_code=self.trust_remote_code,
            )
            model.eval()
            model.requires_grad_(False)
            _fuse(model)
            self._sources[key] = model
        return model

    def adopt(self, path: str, model: Any, tokenizer: Any = None) -> bool:
        """Use ``model``, already in memory, as the resident source saved at ``path`` (its
        weights are the folder's): no second load. Only read, never written into. False (and
        nothing kept) when it is not on this builder's device in its dtype: then ``path`` is
        loaded as usual."""
        device = torch.device(self.device)
        on = getattr(model, "device", None)
        if (
            on is None
            or torch.device(on).type != device.type
            or (device.index is not None and torch.device(on).index != device.index)
            or getattr(model, "dtype", None) != self._torch_dtype()
        ):
            return False
        model.eval()
        key = str(Path(path).resolve())
        self._sources[key] = model
        if tokenizer is not None:
            self._tokenizers[path] = self._tokenizers[key] = tokenizer
        return True

    def tokenizer(self, path: str) -> Any:
        tok = self._tokenizers.get(path)
        if tok is None:
            import transformers

            tok = transformers.AutoTokenizer.from_pretrained(
                path, trust_remote_code=self.trust_remote_code
            )
            self._tokenizers[path] = tok
        return tok

    def _working_model(self, path: str) -> Any:
        if self._working is None or self._working_from != path:
            import transformers

            self._working = None
            model = transformers.AutoModelForCausalLM.from_pretrained(
                path,
                dtype=self._torch_dtype(),
                device_map=self.device,
                trust_remote_code=self.trust_remote_code,
            )
            model.eval()
            model.requires_grad_(False)
            _fuse(model)  # before the tensor map: merges then write the fused buffers too
            self._working, self._working_from = model, path
            self._working_params = dict(model.state_dict())
        return self._working

    # ------------------------------------------------------------------ builder interface
    def build(self, recipe: dict[str, Any], workdir: Path) -> Candidate:
        try:
            return self._build(recipe)
        except InMemoryUnsupported as why:
            log.info("building on disk: %s", why)
            return self.disk.build(recipe, workdir)

    def _build(self, recipe: dict[str, Any]) -> Candidate:
        import time

        from mergekit_evo.methods import load_recipe

        config = load_recipe(recipe)
        method = config.merge_method
        if method in ("dfs", "ps_dfs") and config.tokenizer_source not in (None, "base"):
            raise InMemoryUnsupported("a DFS tokenizer_source is applied on disk, by MergeKit")
        if method == "dfs":
            t0 = time.perf_counter()
            refs = [str(m.model.model.path) for m in config.models or []]
            model = self._route([self.source(p) for p in refs], config.parameters)
            self.last_setup_s = time.perf_counter() - t0
            return Candidate(model=model, tokenizer=self.tokenizer(refs[0]))
        if method == "ps_dfs":
            return self._build_ps_dfs(config)
        model, tok_from = self.merge_in_place(config)
        return Candidate(model=model, tokenizer=self.tokenizer(tok_from))

    def load(self, model_path: str) -> Candidate:
        """A source model for baselines and reports: the resident copy, not a second load."""
        return Candidate(model=self.source(model_path), tokenizer=self.tokenizer(model_path))

    def release(self, candidate: Candidate) -> None:
        """Resident models stay; only the candidate's references go."""
        candidate.model = None
        candidate.tokenizer = None

    def merge(self, recipe: dict[str, Any], out: Path) -> Path:
        """Write a recipe's model to disk through MergeKit (the champion folder)."""
        return self.disk.merge(recipe, out)

    def exact_for(self, recipe: dict[str, Any]) -> bool:
        """Whether the model built here is the one ``mergekit-yaml --random-seed`` writes."""
        methods = {recipe.get("merge_method")}
        params = recipe.get("parameters") or {}
        methods.add(params.get("ps_method"))
        for module in (recipe.get("modules") or {}).values():
            methods.add((module.get("parameters") or {}).get("ps_method"))
        return not methods.intersection(STOCHASTIC_METHODS)

    # ------------------------------------------------------------------ PS in place
    def merge_in_place(self, config: Any) -> tuple[Any, str]:
        """Run MergeKit's per-tensor tasks on resident tensors into the working model."""
        import time

        from mergekit.common import dtype_from_name
        from mergekit.io.tasks import GatherTensors
        from mergekit.options import MergeOptions

        from mergekit_evo.candidate.planning import plan_tensors

        t0 = time.perf_counter()
        if config.slices or config.modules:
            raise InMemoryUnsupported("slices:/modules: recipes are merged on disk")
        out_ref = config.base_model or config.models[0].model
        out_path = str(out_ref.model.path)
        model = self._working_model(out_path)
        options = MergeOptions(
            random_seed=self.random_seed,
            quiet=True,
            device=self.device,
            trust_remote_code=self.trust_remote_code,
        )
        compute = dtype_from_name(config.dtype) if config.dtype else None
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.random_seed)  # same recipe, same DARE masks, every time
            if self._merge_batched(config, options):
                planned = []
            else:
                planned = plan_tensors(config, options)
                self.last_plan_s = time.perf_counter() - t0
                self.last_merge_path = "tasks"
            for weight, task in planned:
                gather = task.gather_tensors
                if not isinstance(gather, GatherTensors):
                    raise InMemoryUnsupported(
                        f"{weight.name}: tokenizer merging is done on disk, not in memory"
                    )
                infos = gather.weight_info.items()
                tensors = {ref: self._tensor(ref, info, compute) for ref, info in infos}
                out = task.execute(tensors=tensors)
                if out is None:
                    continue
                target = self._working_params.get(weight.name)
                if target is None:
                    raise InMemoryUnsupported(f"the working model has no tensor {weight.name}")
                target.copy_(out)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
        self.last_merge_s = time.perf_counter() - t0
        tok_from = str(config.tokenizer_source) if config.tokenizer_source else out_path
        if tok_from in ("base", "union"):
            tok_from = out_path
        return model, tok_from

    def _merge_batched(self, config: Any, options: Any) -> bool:
        """Merge with :mod:`.batched` if it covers the recipe (False: use MergeKit's tasks)."""
        from mergekit_evo.candidate.batched import NotBatchable

        if not self.batched or not self._batcher.handles(config.merge_method):
            return False
        try:
            self._batcher.merge(config, options, self._working_params)
        except NotBatchable as why:
            log.info("merging with MergeKit's per-tensor tasks: %s", why)
            return False
        self.last_plan_s = self._batcher.last_plan_s
        self.last_merge_path = "batched"
        return True

    def _raw_tensor(self, ref: Any, info: Any) -> torch.Tensor:
        """The resident tensor a model reference holds for ``info`` (its own dtype)."""
        if ref.lora is not None:
            raise InMemoryUnsupported("LoRA model references are merged on disk")
        params = self._source_params(str(ref.model.path))
        for name in (info.name, *(info.aliases or ()), *(info.tied_names or ())):
            t = params.get(name)
            if t is not None:
                return t
        raise InMemoryUnsupported(f"{ref.model.path} has no tensor {info.name}")

    def _tensor(self, ref: Any, info: Any, compute: torch.dtype | None) -> torch.Tensor:
        t = self._raw_tensor(ref, info)
        return t if compute is None or t.dtype == compute else t.to(compute)

    def _source_params(self, path: str) -> dict[str, torch.Tensor]:
        model = self.source(path)
        params = getattr(model, "_evo_params", None)
        if params is None:
            params = dict(model.state_dict())
            model._evo_params = params
        return params

    # ------------------------------------------------------------------ DFS routes
    def _route(self, models: list[Any], parameters: Any) -> Any:
        from mergekit_evo.engine import LayerStack, StackModel
        from mergekit_evo.methods.dfs import DFSParameters, plan_path

        raw = {k: v for k, v in dict(parameters or {}).items()}
        params = DFSParameters.from_parameters(raw)
        counts = [m.config.num_hidden_layers for m in models]
        path = plan_path(counts, params)
        if params.head_model >= len(models):
            raise InMemoryUnsupported("head_model is not a model of the route")  # disk says why
        stack = LayerStack.routed(
            models,
            [(r.model, r.layer) for r in path.layers],
            list(path.hop_scales),
            head=params.head_model,
        )
        return StackModel(stack)

    def _build_ps_dfs(self, config: Any) -> Candidate:
        import time

        from mergekit_evo.methods import parse_ps_dfs

        recipe = parse_ps_dfs(config)
        if len(recipe.stages) != 1:
            raise InMemoryUnsupported("ps_dfs with several PS stages is merged on disk")
        ((name, stage),) = recipe.stages.items()
        working, tok_from = self.merge_in_place(stage)
        t0 = time.perf_counter()
        models = [working if m == name else self.source(m) for m in recipe.dfs_models]
        model = self._route(models, recipe.dfs_parameters)
        self.last_setup_s = time.perf_counter() - t0
        tok = self.tokenizer(tok_from if recipe.dfs_models[0] == name else recipe.dfs_models[0])
        return Candidate(model=model, tokenizer=tok)
