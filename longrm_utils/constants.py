"""One table of facts that every module and notebook shares.

Nothing here is computed; each value is either a fact from the LongRM paper / the official
Long-RewardBench release (arXiv 2510.06915, LCM-Lab/LongRM) or a course-wide setting.
"""
from __future__ import annotations

from pathlib import Path

GENERATIVE, SCALAR = "generative", "scalar"
"""The two kinds of reward model: a judge that writes its verdict, and a sequence-classification head."""

# --- Long-RewardBench facts -------------------------------------------------------------------
TASKS = ("LongQA", "Summ", "Safety", "ICL", "Cite", "Code", "Math")
"""The seven tasks, in the official results.csv column order."""

BUCKETS = ("4k", "8k", "16k", "32k", "64k", "128k")
"""Length buckets, stored in the record field ``ctx_length_for_length``."""

SHORT_BUCKET = "short"
"""Bucket label of the course's short set (256-512 token contexts). Never an official column."""

BUCKET_ORDER = (SHORT_BUCKET, *BUCKETS)
"""Every bucket label, shortest first: the order of tables and figures."""

BUCKET_TOKENS = {"short": 512, "4k": 4096, "8k": 8192, "16k": 16384, "32k": 32768, "64k": 65536, "128k": 131072}
"""Nominal size of each bucket in tokens (the target context length the generator aims for)."""

TASKTYPES = ("PairWise", "BestOfN")
BON_SUBTYPES = ("2", "3", "4")
SAME_SUBTYPE = "same"
"""Pairwise ``subtype == "same"`` is an intra-model pair; any other value is cross-model."""

PAPER_TASK_COUNTS = {"LongQA": 522, "Summ": 429, "Cite": 390, "Code": 197, "ICL": 162, "Safety": 140, "Math": 60}
PAPER_TOTAL_ITEMS = 1900
PAPER_PAIRWISE_ITEMS = 1000
PAPER_BON_ITEMS_PER_SIZE = 300

OFFICIAL_ORDER_SEED = 42
"""Seed the official scorer uses to shuffle candidate display order (separate from a run's seed)."""

OFFICIAL_MAX_INPUT_TOKENS = 131072
"""Inputs longer than this keep their first and last halves (official truncation policy)."""

OFFICIAL_MAX_NEW_TOKENS = 2048
MAX_RANK_ARROWS = 10
"""An output with this many or more '>' characters is a parse failure in the official parser."""

RESULT_COLUMNS = (
    "LongQA", "Summ", "Safety", "ICL", "Cite", "Code", "Math",
    "Same.", "Diff.", "PairWise Avg.",
    "Rank2", "Rank3", "Rank4", "Rank Avg",
    "4k", "8k", "16k", "32k", "64k", "128k",
    "AVG.",
)
"""Official results.csv columns, in order. Bucket columns count Pairwise items only."""

SLOT_LETTERS = "ABCD"

# --- Course layout ------------------------------------------------------------------------------
PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_COURSE = PACKAGE_DIR / "_course"
"""Where a wheel install keeps the notebooks, profiles and data (setup.py copies them there)."""
IN_CHECKOUT = (PACKAGE_DIR.parent / "configs" / "profiles").is_dir()
"""True for a git checkout or an editable install; False for a wheel installed into site-packages."""
REPO_ROOT = PACKAGE_DIR.parent if IN_CHECKOUT else SHIPPED_COURSE
"""The course's root: the checkout, or the copy shipped in the wheel. Run directories of a wheel
install go under the working directory instead (:func:`longrm_utils.rundir.resolve`)."""
DATA_DIR = REPO_ROOT / "data"
REFERENCE_DIR = DATA_DIR / "reference"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = REPO_ROOT / "configs" / "profiles"

NOTEBOOKS = (
    "00_setup_and_tour",
    "01_build_long_rewardbench",
    "02_baseline_judging",
    "03_failure_analysis",
    "04_stage1_long_sft",
    "05_stage2_align_generative_rm",
    "06_stage2_align_scalar_rm",
    "07_evaluate_longrms",
    "08_scaling_up",
)

CPU_BUDGET_MIN = {
    "00_setup_and_tour": 1,
    "01_build_long_rewardbench": 2,
    "02_baseline_judging": 4,
    "03_failure_analysis": 2,
    "04_stage1_long_sft": 4,
    "05_stage2_align_generative_rm": 3,
    "06_stage2_align_scalar_rm": 2,
    "07_evaluate_longrms": 1,
    "08_scaling_up": 1,
}
"""Planning budget (minutes) per notebook on the 2-core CPU profile. summary.md flags overruns."""

CPU_MAX_NEW_TOKENS = 64
"""Generation cap on CPU profiles."""

# Paper tables kept as CSV, with their source in each file's header comment.
REFERENCE_TABLES = {
    "table1": REFERENCE_DIR / "paper_table1_long_rewardbench.csv",
    "headline": REFERENCE_DIR / "paper_headline_avg.csv",
}

# Stage II hyperparameters: the paper states two settings that disagree.
ALIGN_MAIN_TEXT = {"V": 2, "gamma": 2.5, "beta": 0.5, "nll_weight": 0.0}
"""Section 4.3 of the paper."""
ALIGN_TABLE5 = {"V": 2, "gamma": 0.5, "beta": 2.5, "nll_weight": 0.05}
"""Table 5 of the paper."""

STAGE1_TABLE4 = {"learning_rate": 2e-6, "global_batch_size": 32, "warmup_ratio": 0.03,
                 "adam_beta1": 0.9, "adam_beta2": 0.95, "bf16": True, "max_length": 131072}
"""Stage I (SFT) hyperparameters from the paper's Table 4."""

COURSE_MAP = {
    "00_setup_and_tour": ("setup and tour", "what your machine can run; the tiny model and SmolLM2; a real judge ignoring the verdict format"),
    "01_build_long_rewardbench": ("build a Long-RewardBench", "records, 7 offline task generators exact to the token, perturbations, labels, buckets, a data card"),
    "02_baseline_judging": ("baseline judging", "generative and scalar judges in both orders; official scoring; shared-prefix scalar scoring"),
    "03_failure_analysis": ("failure analysis", "format errors, position bias, self-contradiction, decline with length, context neglect"),
    "04_stage1_long_sft": ("stage I: long-context SFT", "short-to-long judgement synthesis; SFT with assistant-only loss; LoRA/QLoRA/full"),
    "05_stage2_align_generative_rm": ("stage II: align a generative RM", "consistency-voted preferences; multi-reject length-normalised loss"),
    "06_stage2_align_scalar_rm": ("stage II: align a scalar RM", "Bradley-Terry with several rejects and a shared prefix"),
    "07_evaluate_longrms": ("evaluate the LongRMs", "base → SFT → aligned, per task and bucket, beside the paper; short-context check"),
    "08_scaling_up": ("scaling up", "memory planner, multi-GPU and context-parallel configs, vLLM judging, RM-guided sampling"),
}
"""Notebook stem -> (short title, what you learn), for the README course map and the report."""

# Which notebook makes which input, for the "run notebook NN first" messages and the tables.
ARTIFACT_PRODUCERS = {
    "bench": "01_build_long_rewardbench",
    "judges": "02_baseline_judging (or the notebook that trained that model)",
    "models": "04_stage1_long_sft / 05_stage2_align_generative_rm / 06_stage2_align_scalar_rm",
    "analysis": "03_failure_analysis",
}
"""First part of a logical artifact name (``bench/mini`` -> ``bench``) -> the notebook that writes it."""

SHIPPED_ARTIFACTS = {
    "bench/mini": DATA_DIR / "mini" / "mini.jsonl",
    "bench/short": DATA_DIR / "mini" / "short.jsonl",
    "bench/short_train": DATA_DIR / "mini" / "short_train.jsonl",
}
"""Artifacts a notebook run alone can fall back to: copies shipped under ``data/``."""

STAGE_NOTEBOOK = {"heuristic": "02_baseline_judging", "base": "02_baseline_judging",
                  "sft": "04_stage1_long_sft", ("aligned", "generative"): "05_stage2_align_generative_rm",
                  ("aligned", "scalar"): "06_stage2_align_scalar_rm", "trained": "04-06"}
"""A judge's training stage (and kind) -> the notebook that produces judges of that stage."""
