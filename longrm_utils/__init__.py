"""longrm_utils: the package behind the LongRM course notebooks.

Modules by stage: ``bench`` (build a Long-RewardBench-format benchmark), ``judge`` (judge it and score
it the official way), ``evaluate`` (compare judges and stages), ``analysis`` (how judges fail),
``train`` (stage I SFT, stage II alignment, memory planning), ``steps`` (the verbs the notebooks call).
Shared ground: ``constants`` (the one table of facts), ``contracts`` (the data contracts), ``io``,
``stats``, ``runtime`` (the machine), ``rundir`` (the run directory), ``models`` (the one model
registry). ``docs/contracts.md`` documents the files they exchange.
"""
__version__ = "0.1.0"


def load_rm(path, **kwargs):
    """Load a trained RM: ``.score(prompt_messages, responses)`` (scalar) or ``.judge(...)`` (generative)."""
    # imported on call: ``import longrm_utils`` stays free of torch and transformers
    from .rm import load_rm as _load_rm

    return _load_rm(path, **kwargs)
