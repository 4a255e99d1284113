"""Seconds per PS candidate: MergeKit's evolve on-disk path against the in-memory engine.

One run, same machine, same candidates (TIES recipes from the project's own PS genome):

- **MergeKit on disk**: what ``mergekit-evolve``'s on-disk strategy does per candidate, its
  ``merge_model`` (``run_merge`` into a folder, ``cuda=True``) then its ``evaluate_model``
  (``lm_eval.simple_evaluate`` with the ``hf`` model on that folder, bf16).  The two calls are
  made here directly: ``mergekit.evo.helpers`` imports ``ray`` at module load.
- **ours**: ``ResidentCandidateBuilder`` (sources resident, MergeKit's per-tensor tasks into one
  working model) and ``FitnessEvaluator`` with the ``mergekit_evo`` lm-eval model.

Models are built here (no hub): a byte-level BPE tokenizer of 8192 tokens trained on GSM8K
train text, a random Qwen2.5-0.5B-shaped base (0.37B parameters, bf16) and two perturbed copies;
``--size 7b``: Mistral-7B-shaped with 28 of 32 layers (6.2B).  Fitness: ``evo_gsm8k_search``
5-shot, ``--limit`` questions, ``--max-gen-toks`` new tokens.  Also measured: a DFS candidate's
set-up, generation equality with HF ``generate`` (float32 on the random merge; bf16 and float32 on
the trained CPU zoo), peak GPU memory, and the floors (bytes a merge moves, decode steps).

    python benchmarks/candidate_cost.py --size 0.37b --json docs/benchmarks.json   # GPU
    python benchmarks/candidate_cost.py --tiny                                      # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES: dict[str, dict[str, Any]] = {
    "0.37b": dict(
        arch="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
    ),
    "7b": dict(
        arch="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=28,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
    ),
    "tiny": dict(
        arch="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
    ),
}  # fmt: skip
H200_BYTES_PER_S = 4.3e12  # device-to-device copy measured on this workplace's H200s
VOCAB = 8192


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------- setup
def build_tokenizer(out: Path, vocab: int) -> None:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from mergekit_evo.fitness.data import data_dir

    texts = []
    with (data_dir() / "gsm8k" / "train.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            texts.append(f"Question: {row['question']}\nAnswer: {row['answer']}\n\n")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tok.save_pretrained(str(out))


def build_models(work: Path, size: str, device: str) -> dict[str, str]:
    """base, a, b under ``work``: random base in bf16, a/b = base + small noise."""
    import transformers
    from safetensors.torch import save_file

    shape = dict(SHAPES[size])
    arch = shape.pop("arch")
    cls = {"qwen2": transformers.Qwen2Config, "mistral": transformers.MistralConfig}[arch]
    cfg = cls(vocab_size=VOCAB, max_position_embeddings=4096, rms_norm_eps=1e-6, **shape)
    cfg.eos_token_id = cfg.bos_token_id = cfg.pad_token_id = 0
    cfg.architectures = [{"qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}[arch]]
    with torch.device("meta"):
        meta = transformers.AutoModelForCausalLM.from_config(cfg)
    names = {k: v.shape for k, v in meta.state_dict().items()}
    if cfg.tie_word_embeddings:
        names.pop("lm_head.weight", None)
    paths = {}
    gen = torch.Generator(device=device).manual_seed(0)
    base: dict[str, torch.Tensor] = {}
    for name, shp in names.items():
        if "norm" in name:
            base[name] = torch.ones(shp, dtype=torch.bfloat16, device=device)
        else:
            t = torch.randn(shp, generator=gen, device=device, dtype=torch.float32) * 0.02
            base[name] = t.to(torch.bfloat16)
    for i, label in enumerate(("base", "a", "b")):
        d = work / label
        d.mkdir(parents=True, exist_ok=True)
        if label == "base":
            sd = base
        else:
            g = torch.Generator(device=device).manual_seed(100 + i)
            sd = {
                k: (v.float() + 0.004 * torch.randn(v.shape, generator=g, device=device)).to(
                    torch.bfloat16
                )
                if "norm" not in k
                else v
                for k, v in base.items()
            }
        save_file({k: v.contiguous().cpu() for k, v in sd.items()}, str(d / "model.safetensors"),
                  metadata={"format": "pt"})  # fmt: skip
        cfg.torch_dtype = "bfloat16"
        cfg.save_pretrained(str(d))
        transformers.GenerationConfig(eos_token_id=0, pad_token_id=0).save_pretrained(str(d))
        shutil.copytree(work / "tokenizer", d, dirs_exist_ok=True)
        paths[label] = str(d)
        del sd
    n = sum(v.numel() for v in base.values())
    log(f"built {size} models: {n / 1e9:.3f}B parameters each, in {work}")
    return paths


def search_config(paths: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The issue's PS setup: TIES, per-layer groups of 4, GSM8K 5-shot, bf16 on CUDA."""
    return {
        "mode": "ps",
        "models": {"a": paths["a"], "b": paths["b"]},
        "base_model": paths["base"],
        "ps": {"method": "ties", "parameters": ["weight", "density"], "granularity": "layers",
               "layer_group_size": 4, "fixed": {"normalize": True}},
        "fitness": {"tasks": [{"name": "evo_gsm8k_search"}], "num_fewshot": 5,
                    "limit": args.limit, "batch_size": args.batch, "max_gen_toks": args.max_gen},
        "dtype": "bfloat16",
        "device": args.device,
        "baselines": False,
        "optimizer": {"sampler": "cmaes", "seed": 0},
        "budget": {"max_trials": 50},
    }  # fmt: skip


def recipes(cfg: dict[str, Any], n: int) -> list[dict[str, Any]]:
    import numpy as np

    from mergekit_evo.config import parse_search_config
    from mergekit_evo.space.ps import PSSpace

    space = PSSpace.from_config(parse_search_config(cfg))
    rng = np.random.default_rng(0)
    x0 = np.asarray(space.vector.x0(), dtype=float)
    out = [space.recipe(x0)]
    while len(out) < n:
        out.append(space.recipe(np.clip(x0 + 0.15 * rng.standard_normal(len(x0)), 0, 1)))
    return out


# ----------------------------------------------------------------------------------- paths
def mergekit_ondisk(recipe: dict, spec: dict, tm: Any, work: Path, device: str) -> dict:
    """``merge_model`` then ``evaluate_model``, as mergekit-evolve's on-disk strategy does."""
    import lm_eval
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from mergekit_evo.methods import load_recipe

    out = Path(tempfile.mkdtemp(prefix="merged", dir=work))
    opts = MergeOptions(cuda=device.startswith("cuda"), copy_tokenizer=True, quiet=True,
                        random_seed=0, lazy_unpickle=False)  # fmt: skip
    sync(device)
    t0 = time.perf_counter()
    run_merge(load_recipe(recipe), out_path=str(out), options=opts)
    t1 = time.perf_counter()
    res = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(out), "dtype": "bfloat16", "use_cache": True,
                    "device": device},
        tasks=[spec["tasks"][0]["name"]], num_fewshot=spec["num_fewshot"], limit=spec["limit"],
        batch_size=spec["batch_size"], task_manager=tm, log_samples=False, verbosity="WARNING",
        gen_kwargs=f"max_gen_toks={spec['max_gen_toks']}",
    )  # fmt: skip
    t2 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    scores = res["results"][spec["tasks"][0]["name"]]
    return {"merge_s": t1 - t0, "eval_s": t2 - t1, "total_s": t2 - t0,
            "score": float(scores.get("exact_match,numeric", float("nan")))}  # fmt: skip


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ours(recipe: dict, builder: Any, evaluator: Any, device: str) -> dict:
    sync(device)
    t0 = time.perf_counter()
    cand = builder.build(recipe, Path(tempfile.gettempdir()))
    t1 = time.perf_counter()
    res = evaluator.score(cand.model, cand.tokenizer)
    sync(device)
    t2 = time.perf_counter()
    return {"merge_s": t1 - t0, "eval_s": t2 - t1, "total_s": t2 - t0, "score": res.score}


def generation_agreement(model: Any, tok: Any, evaluator: Any, n: int) -> dict:
    """Fraction of rows whose generation equals HF ``generate``'s, on ``n`` task requests."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from mergekit_evo.fitness.fast_lm import EngineLM

    name, task = next(iter(evaluator.tasks.items()))
    docs = list(task.eval_docs)[:n]
    kw = dict(task.config.generation_kwargs or {})
    if evaluator.spec.max_gen_toks:
        kw["max_gen_toks"] = evaluator.spec.max_gen_toks
    reqs = [
        Instance(
            "generate_until",
            d,
            (task.fewshot_context(d, task.get_config("num_fewshot") or 0), dict(kw)),
            i,
        )  # fmt: skip
        for i, d in enumerate(docs)
    ]
    bs = evaluator.spec.batch_size
    t0 = time.perf_counter()
    want = HFLM(pretrained=model, tokenizer=tok, batch_size=bs).generate_until(reqs)
    t1 = time.perf_counter()
    got = EngineLM(pretrained=model, tokenizer=tok, batch_size=bs).generate_until(reqs)
    t2 = time.perf_counter()
    same = sum(a == b for a, b in zip(want, got, strict=True))
    return {"task": name, "rows": len(reqs), "equal": same, "fraction": same / max(1, len(reqs)),
            "hf_s": t1 - t0, "engine_s": t2 - t1}  # fmt: skip


def zoo_agreement(device: str, limit: int) -> dict:
    """The trained CPU zoo's MATH model: engine vs HF generations and scores, bf16 and fp32."""
    import transformers

    from mergekit_evo.fitness import FitnessEvaluator

    zoo = ROOT / "fixtures" / "zoo"
    out = {}
    for dtype in ("bfloat16", "float32"):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            zoo / "math", dtype=getattr(torch, dtype)
        ).to(device)
        tok = transformers.AutoTokenizer.from_pretrained(zoo / "math")
        spec = {"tasks": [{"name": "zoo_target_search", "metric": "exact_match,flexible-extract"}],
                "include_path": [str(zoo / "tasks")], "limit": limit, "num_fewshot": 0,
                "max_gen_toks": 32, "batch_size": 64, "device": device}  # fmt: skip
        hf = FitnessEvaluator({**spec, "engine": "hf"}).score(model, tok).score
        ev = FitnessEvaluator({**spec, "engine": "mergekit_evo"})
        eng = ev.score(model, tok).score
        agree = generation_agreement(model, tok, ev, limit)
        out[dtype] = {"hf_score": hf, "engine_score": eng, "scores_equal": hf == eng, **agree}
        log(f"zoo {dtype}: hf {hf:.4f} engine {eng:.4f}, generations equal "
            f"{agree['equal']}/{agree['rows']}")  # fmt: skip
    return out


# ----------------------------------------------------------------------------------- main
def run_size(size: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from mergekit_evo.candidate.resident import ResidentCandidateBuilder
    from mergekit_evo.fitness import FitnessEvaluator

    dev = args.device
    (work / "tokenizer").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_tokenizer(work / "tokenizer", VOCAB)
    paths = build_models(work, size, dev)
    setup_s = time.perf_counter() - t0
    cfg = search_config(paths, args)
    (work / "search.yml").write_text(json.dumps(cfg, indent=1))
    spec = {**cfg["fitness"], "device": dev, "engine": "mergekit_evo", "seed": 0}
    rs = recipes(cfg, args.candidates)
    evaluator = FitnessEvaluator(spec)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    builder = ResidentCandidateBuilder(device=dev, dtype="bfloat16")
    t0 = time.perf_counter()
    for p in (paths["base"], paths["a"], paths["b"]):
        builder.source(p)
    load_s = time.perf_counter() - t0
    mine = []
    for i, r in enumerate(rs):
        m = ours(r, builder, evaluator, dev)
        m["inplace_merge_s"] = builder.last_merge_s
        m["plan_s"] = builder.last_plan_s
        st = evaluator.decoders._decoder.stats if evaluator.decoders._decoder else None
        for key in ("prefill_s", "decode_s", "check_s", "decode_steps"):
            m[key] = getattr(st, key, 0.0) - sum(x.get(key, 0.0) for x in mine)
        mine.append(m)
        log(
            f"ours #{i}: merge {m['merge_s']:.3f} s (in place {m['inplace_merge_s']:.3f}, "
            f"planning {m['plan_s']:.3f}), eval {m['eval_s']:.2f} s (prefill "
            f"{m['prefill_s']:.2f}, decode {m['decode_s']:.2f} in {m['decode_steps']} steps, "
            f"host checks {m['check_s']:.2f}), total {m['total_s']:.2f} s, score {m['score']:.4f}"
        )
    stats = evaluator.decoders._decoder.stats if evaluator.decoders._decoder else None
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else None

    # a DFS candidate over a and b: model A's path with one B layer swapped in, scales != 1
    n_layers = SHAPES[size]["num_hidden_layers"]
    ind = [1.0] * n_layers + [-1.0] * n_layers
    ind[n_layers // 2], ind[n_layers + n_layers // 2] = -1.0, 1.0
    dfs = {"merge_method": "dfs", "models": [{"model": paths["a"]}, {"model": paths["b"]}],
           "parameters": {"repeats": 1, "indicators": ind, "scales": [[1.0, 0.9], [1.1, 1.0]]},
           "dtype": "bfloat16"}  # fmt: skip
    setups = []
    for _ in range(5):
        builder.build(dfs, work)
        setups.append(builder.last_setup_s)
    dfs_cand = ours(dfs, builder, evaluator, dev)
    log(f"DFS set-up {1e3 * statistics.median(setups):.2f} ms; DFS candidate "
        f"{dfs_cand['total_s']:.2f} s")  # fmt: skip

    disk = []
    for i, r in enumerate(rs[: args.mergekit_candidates]):
        m = mergekit_ondisk(r, spec, evaluator.task_manager, work, dev)
        disk.append(m)
        log(
            f"mergekit #{i}: merge {m['merge_s']:.2f} s, eval {m['eval_s']:.2f} s, "
            f"total {m['total_s']:.2f} s, score {m['score']:.4f}"
        )

    agree32 = None
    if not args.skip_equality:  # generations of the random merge in float32: HF vs the engine
        import transformers

        work_fp32 = work / "fp32"
        builder.disk.merge(rs[0], work_fp32)
        m32 = transformers.AutoModelForCausalLM.from_pretrained(work_fp32, dtype=torch.float32)
        tok = transformers.AutoTokenizer.from_pretrained(work_fp32)
        agree32 = generation_agreement(m32.to(dev), tok, evaluator, min(args.limit, 64))
        del m32
        log(f"random merge fp32: generations equal {agree32['equal']}/{agree32['rows']}")

    skip = 1 if len(mine) > 1 else 0  # the first candidate pays graph capture and warm-up
    med = {k: statistics.median(m[k] for m in mine[skip:]) for k in mine[0]}
    dmed = {k: statistics.median(m[k] for m in disk[skip if len(disk) > 1 else 0:])
            for k in disk[0]} if disk else {}  # fmt: skip
    params = sum(t.numel() for t in builder.source(paths["base"]).state_dict().values())
    nbytes = params * 2
    ctx = stats.prefill_tokens / max(1, stats.rows) if stats else 0
    layers = SHAPES[size]["num_hidden_layers"]
    kv = (
        SHAPES[size]["num_key_value_heads"]
        * (SHAPES[size]["hidden_size"] // SHAPES[size]["num_attention_heads"])
        * 2
        * 2
        * layers
    )
    decode_floor = args.max_gen * (nbytes + args.batch * (ctx + args.max_gen / 2) * kv)
    return {
        "size": size,
        "parameters": params,
        "questions": args.limit,
        "batch_size": args.batch,
        "max_gen_toks": args.max_gen,
        "setup_build_s": setup_s,
        "sources_load_s": load_s,
        "ours": mine,
        "mergekit_ondisk": disk,
        "ours_s": med["total_s"],
        "ours_first_s": mine[0]["total_s"],
        "merge_s": statistics.median(m["inplace_merge_s"] for m in mine[skip:]),
        "merge_plan_s": statistics.median(m["plan_s"] for m in mine[skip:]),
        "prefill_s": statistics.median(m["prefill_s"] for m in mine[skip:]),
        "decode_s": statistics.median(m["decode_s"] for m in mine[skip:]),
        "eval_s": med["eval_s"],
        "mergekit_ondisk_s": dmed.get("total_s"),
        "mergekit_merge_s": dmed.get("merge_s"),
        "mergekit_eval_s": dmed.get("eval_s"),
        "ratio": (dmed["total_s"] / med["total_s"]) if dmed else None,
        "dfs_setup_s": statistics.median(setups),
        "dfs_candidate_s": dfs_cand["total_s"],
        "scores_equal": bool(disk) and all(
            abs(d["score"] - o["score"]) < 1e-9 for d, o in zip(disk, mine, strict=False)),
        "scores": {"ours": [m["score"] for m in mine], "mergekit": [d["score"] for d in disk]},
        "generation_equal_fp32_random": agree32,
        "peak_gpu_gib": peak,
        "decode_stats": stats.__dict__ if stats else None,
        "floors": {
            "merge_bytes": nbytes * 5,  # read base + 2 sources (+ their deltas), write 1
            "merge_s": nbytes * 5 / H200_BYTES_PER_S,
            "decode_s": decode_floor / H200_BYTES_PER_S,
        },
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="0.37b", choices=sorted(SHAPES))
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test (tiny models, 4 questions)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-gen", type=int, default=256)
    ap.add_argument("--candidates", type=int, default=6)
    ap.add_argument("--mergekit-candidates", type=int, default=3)
    ap.add_argument("--zoo", action="store_true", help="also the trained-zoo equality check")
    ap.add_argument("--skip-equality", action="store_true", help="no float32 HF comparison")
    ap.add_argument("--work", default=None, help="where models are written (default: a tmp dir)")
    ap.add_argument("--json", default=None, help="merge the results into this JSON file")
    args = ap.parse_args()
    if args.tiny:
        args.size, args.limit, args.batch, args.max_gen = "tiny", 4, 4, 16
        args.candidates, args.mergekit_candidates = 2, 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from mergekit_evo.quiet import quiet_libraries

    quiet_libraries()
    work = Path(args.work or tempfile.mkdtemp(prefix=f"cost-{args.size}-"))
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    res = {"date": time.strftime("%Y-%m-%d"), "card": card, "command": " ".join(sys.argv)}
    res.update(run_size(args.size, args, work))
    if args.zoo:
        res["zoo_generation_equality"] = zoo_agreement(args.device, 200)
    log(json.dumps({k: v for k, v in res.items() if k not in ("ours", "mergekit_ondisk")},
                   indent=1, default=str))  # fmt: skip
    log(
        f"\nper candidate: mergekit on disk {res['mergekit_ondisk_s']:.2f} s, ours "
        f"{res['ours_s']:.3f} s (merge {res['merge_s'] * 1e3:.1f} ms), ratio {res['ratio']:.1f}x"
    )
    if args.json:
        path = Path(args.json)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[args.size] = res
        if args.size == "0.37b":  # the flat keys
            for k in ("card", "mergekit_ondisk_s", "ours_s", "ratio", "merge_s", "dfs_setup_s",
                      "scores_equal"):  # fmt: skip
                doc[k] = res[k]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
