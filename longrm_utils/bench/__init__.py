"""Long-RewardBench-format benchmarks: records (``schema``), offline generators and hub loaders
(``sources``), candidates / labels / assembly (``construct``) and task metrics (``metrics``).

Entry points other modules use:

* ``schema.read_jsonl`` / ``write_jsonl`` / ``validate_record`` / ``load_official``;
  ``schema.answers(rec)`` (best first), ``schema.answer_scores(rec)``, ``schema.context_parts(rec)``,
  ``schema.with_context(rec, new_context)``;
* ``construct.build_course_sets(out, ...)`` (what notebook 01 and ``python -m longrm_utils build`` run),
  ``construct.heuristic_scores(rec, "longer" | "overlap")``, ``construct.rank_match(scores)``;
* ``sources.generate(task, n_tokens, sources.counter_for(tokenizer))`` for one length-exact triplet.
"""
