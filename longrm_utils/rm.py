"""Using a trained RM outside the notebooks: :func:`load_rm` and ``python -m longrm_utils export``.

>>> rm = load_rm("runs/cpu/models/smollm2-bt")            # a scalar RM (adapter or merged)
>>> rm.score([{"role": "user", "content": "..."}], ["answer 1", "answer 2"])
[1.73, -0.41]
>>> judge = load_rm("runs/cpu/models/smollm2-sft")        # a generative judge
>>> judge.judge([{"role": "user", "content": "..."}], ["answer 1", "answer 2"])
[0, 1]                                                    # rank of each response, 0 = best

Both reuse the judging harness (``judge.backends``): the same prompts, parsing, truncation and
shared-prefix scoring that the benchmark numbers were measured with.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import models, runtime
from .cli import ArgumentParser, add_flag
from .modelcard import model_card
from .judge import backends, prompts


def _view(prompt_messages: Sequence[dict], responses: Sequence[str]) -> backends.ItemView:
    if len(responses) < 1:
        raise ValueError("give at least one response")
    tasktype = "PairWise" if len(responses) == 2 else "BestOfN"
    return backends.ItemView(rec={"tasktype": tasktype}, answers=list(responses),
                             messages=[dict(m) for m in prompt_messages], context="")


@dataclass
class ScalarRM:
    loaded: models.Loaded
    max_input_tokens: int

    def score(self, prompt_messages: Sequence[dict], responses: Sequence[str]) -> list[float]:
        """One reward per response (higher is better); the prompt is encoded once (shared prefix)."""
        j = backends.ScalarJudge(self.loaded, max_input_tokens=self.max_input_tokens)
        seqs, _ = j.candidate_ids(_view(prompt_messages, responses))
        scores, _ = backends.score_shared_prefix(self.loaded, seqs)
        return scores

    def best_of_n(self, prompt_messages: Sequence[dict], responses: Sequence[str]) -> int:
        s = self.score(prompt_messages, responses)
        return max(range(len(s)), key=s.__getitem__)


@dataclass
class GenerativeRM:
    loaded: models.Loaded
    max_input_tokens: int
    max_new_tokens: int
    templates: prompts.Templates
    last_raw: str | None = None

    def judge(self, prompt_messages: Sequence[dict], responses: Sequence[str]) -> list[int] | None:
        """Rank of each response (0 = best), or None when the output has no parseable verdict
        (the raw output is kept in ``last_raw``)."""
        if not 2 <= len(responses) <= 4:
            raise ValueError(f"a generative judge compares 2 to 4 responses, got {len(responses)}")
        j = backends.HFGenerativeJudge(self.loaded, templates=self.templates, max_new_tokens=self.max_new_tokens,
                                       max_input_tokens=self.max_input_tokens)
        res = j.judge_item(_view(prompt_messages, responses), [list(range(len(responses)))])[0]
        self.last_raw = res.raw
        return res.ranking

    def best_of_n(self, prompt_messages: Sequence[dict], responses: Sequence[str]) -> int | None:
        r = self.judge(prompt_messages, responses)
        return None if r is None else r.index(0)


def load_rm(path: str, *, device: str = "auto", kind: str | None = None, max_input_tokens: int | None = None,
            max_new_tokens: int = 256, prompt_file: str | None = None, quantization: str | None = None):
    """A scalar or generative RM from a course model folder (adapter or merged), a preset or a hub id."""
    loaded = models.load(str(path), kind=kind, device=device, quantization=quantization)
    limit = max_input_tokens or loaded.spec.max_context
    if models.is_scalar(loaded.model):
        return ScalarRM(loaded, limit)
    return GenerativeRM(loaded, limit, max_new_tokens, prompts.load_templates(prompt_file))


def export(model_dir: str | Path, out: str | Path, metrics_path: str | Path | None = None, *,
           device: str = "auto", dtype: str | None = None) -> Path:
    """Merge LoRA weights into the base (when the folder is an adapter) and write a model card.

    The base is loaded unquantized in ``dtype`` (default: the preset's own, bf16 for the 8B models)
    on ``device``, even when it was trained in 4-bit: merging into a dequantized fp32 copy would need
    about 32 GB for an 8B model, twice the bf16 size, and give the same weights once saved in bf16
    (GPU-paths defect 10b)."""
    model_dir, out = Path(model_dir), Path(out)
    spec = models.get_spec(str(model_dir))
    loaded = models.load(str(model_dir), device=device, dtype=dtype or spec.dtype, quantization=None)
    model = loaded.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    meta = dict(models.read_meta(model_dir) or {})
    meta["exported_from"] = model_dir.name  # a name, not this machine's path
    meta["merged_lora"] = (model_dir / "adapter_config.json").exists()
    meta["adapter"] = False
    models.write_meta(out, **meta)
    metrics = None
    for cand in ([metrics_path] if metrics_path else []) + [model_dir / "metrics.json"]:
        if cand and Path(cand).exists():
            metrics = json.loads(Path(cand).read_text())
            break
    spec = models.REGISTRY.get(str(meta.get("base")))
    (out / "README.md").write_text(model_card(meta, metrics, out.name, base_id=(spec.hf_id if spec else None)
                                              or str(meta.get("base")), license=spec.license if spec else "",
                                              scalar=meta.get("kind") == models.SCALAR))
    return out


def export_cli(argv: list[str]) -> int:
    p = ArgumentParser(prog="longrm_utils export", description="merge LoRA weights and write a model card")
    p.add_argument("--model", required=True, help="a course model folder (LoRA adapter or full weights)")
    p.add_argument("--out", required=True, help="where to write the merged model")
    p.add_argument("--metrics", default=None, help="a judge metrics.json to put in the model card")
    p.add_argument("--device", default="auto", help="where to merge: auto (a GPU when there is one), cpu, cuda")
    p.add_argument("--dtype", default=None, help="weights dtype of the export (default: the base preset's, bf16 for 8B)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="upload the exported folder as a Hub model repo (needs a token; HF_HUB_OFFLINE unset)")
    add_flag(p, "private", default=True, help="with --push-to-hub: create the repo private")
    a = p.parse_args(argv)
    print(f"wrote {export(a.model, a.out, a.metrics, device=a.device, dtype=a.dtype)}")
    if a.push_to_hub:
        print(f"pushed: {runtime.push_to_hub(a.out, a.push_to_hub, repo_type='model', private=a.private)}")
    return 0
