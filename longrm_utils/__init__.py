"""longrm_utils: the package behind the LongRM course notebooks.

Modules by stage: ``bench`` (build a Long-RewardBench-format benchmark), ``judge`` (judge it and score
it the official way), ``analysis`` (how judges fail), ``train`` (stage I SFT, stage II alignment,
memory planning). ``models`` is the one model registry; ``constants`` the one table of facts;
``env`` the capability report and run directories; ``course`` the papermill runner.
"""
__version__ = "0.1.0"


def load_rm(path, **kwargs):
    """Load a trained RM: ``.score(prompt_messages, responses)`` (scalar) or ``.judge(...)`` (generative)."""
    from .rm import load_rm as _load_rm

    return _load_rm(path, **kwargs)
