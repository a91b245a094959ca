"""How judges fail on long contexts: a failure taxonomy over saved ``predictions.jsonl`` files.

Every measure is a pure function of prediction lines (``docs/contracts.md``) and, where it needs
the responses, of the benchmark records they were judged on (joined on ``(task, id)``). No model
is loaded, so a GPU run can be analysed on a laptop. Notebook 03 explains each measure:

* ``formats``: format non-compliance by kind, classified from the raw output itself;
* ``position``: the first-slot rate and the bias rate (as in ``metrics.json``) and the
  position-preference matrix (where the best answer was shown x which slot the judge picked);
* ``contradiction``: a rule-based detector for verdicts that name one answer while the judge's own
  explanation argues for another, measured against the hand-labelled sample in ``data/labelled/``;
* ``length``: two-order accuracy per length bucket and its slope per doubling of the context, and
  how often the longest response is picked when it is not the best one;
* ``ablation``: context neglect, the same items judged again with the context removed or replaced
  by same-length distractors (the judging itself is :func:`longrm_utils.steps.ablation.run_ablation`);
* ``outcomes``: one exclusive outcome per prediction line, for the stacked plots; ``gallery``:
  examples of each failure;
* ``report``: :func:`analyze` (``failure_report.json``/``.md`` and the ``plots``) and the CLI;
  ``tables``: the report's measures as the DataFrames notebook 03 shows.
"""
from .inputs import saved_judges
from .report import analyze, cli

__all__ = ["analyze", "cli", "saved_judges"]
