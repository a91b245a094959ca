"""The Hub model card of a saved or exported RM: YAML metadata first, then what the model is.

It imports nothing of the package: :func:`longrm_utils.models.save_model` and ``longrm export`` pass
in what the card names (the base's hub id and licence, the training metadata, the metrics).
"""
from __future__ import annotations

from pathlib import Path

import yaml


def hub_license(text: str) -> str:
    """The Hub's ``license:`` identifier for a free-text licence (``other`` when unsure)."""
    text = text.lower()
    return "apache-2.0" if text.startswith("apache-2.0") else "llama3.1" if text.startswith("llama 3.1") else "other"


def model_card(meta: dict, metrics: dict | None, name: str, *, base_id: str, license: str, scalar: bool) -> str:
    """A Hub model card: YAML metadata (licence, base model, datasets, tags, and the metrics with the
    benchmark they were measured on), then the base, the training metadata and how to load it."""
    kind = "scalar" if scalar else "generative"
    head = {"license": hub_license(license), "base_model": base_id,
            "library_name": "peft" if meta.get("adapter") else "transformers",
            "pipeline_tag": "text-classification" if kind == "scalar" else "text-generation",
            "tags": ["reward-model", "long-context", "longrm-course", f"{kind}-rm"]
                    + (["lora"] if meta.get("adapter") else []),
            **({"datasets": [meta["train_data"]]} if meta.get("train_data") else {})}
    if metrics and isinstance(metrics.get("overall"), dict):
        o = metrics["overall"]
        vals = [{"type": k, "value": round(100 * o[k], 2), "name": label} for k, label in
                (("acc_official", "official accuracy (%)"), ("acc_two_order", "two-order accuracy (%)"),
                 ("auc", "AUC of the preference probability (%)")) if o.get(k) is not None]
        bench = str((metrics.get("run") or {}).get("args", {}).get("bench") or "course benchmark")
        head["model-index"] = [{"name": name, "results": [{
            "task": {"type": "text-classification", "name": "reward modeling"},
            "dataset": {"type": "long-rewardbench-format", "name": Path(bench).name}, "metrics": vals}]}]
    lines = ["---", yaml.safe_dump(head, sort_keys=False).rstrip(), "---", "", f"# {name}", "",
             f"A {kind} long-context reward model trained with the LongRM course (after Tang et al., 2025, "
             "arXiv 2510.06915).", "", "## Training", "", f"- base model: `{base_id}`"]
    lines += [f"- {k}: {Path(str(v)).name if k == 'init' else v}" for k, v in meta.items()
              if k not in ("base", "kind", "model_info")]
    lines += ["", "## Use", "", "```python", "from longrm_utils import load_rm", "", "rm = load_rm('.')", "```"]
    if not metrics:
        lines += ["", "No metrics are attached (`longrm export --metrics judges/<id>/metrics.json`)."]
    return "\n".join(lines) + "\n"
