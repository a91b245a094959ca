"""Evaluation across judges: every judge a run saved, compared (notebooks 02 and 04-07).

Everything here reads saved files (``metrics.json``, ``predictions.jsonl``, ``run_config.json``,
``longrm.json``; see ``docs/contracts.md``); nothing judges anew. Scoring one judge's predictions
is :mod:`longrm_utils.judge.score`.

* :mod:`.judges` -- load a judge folder, which benchmark it ran on, each judge's role (kind,
  training stage, producing notebook), and the base -> Stage I SFT -> aligned lineages;
* :mod:`.tables` -- leaderboard, per-group and lineage tables, the paper comparison, the
  short-context check, Markdown rendering;
* :mod:`.progress` -- before/after figures of one model's training (notebooks 04-06);
* :mod:`.plots` -- grouped bars with bootstrap intervals.
"""
