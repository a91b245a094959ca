"""Long-RewardBench-format benchmarks, in layers (each imports only the ones above it):

* ``schema`` (records: fields, validation, io, the official loader) and ``metrics`` (task metrics);
* ``text`` (token counting, invented names and prose, exact-length assembly), ``generators`` (the
  seven offline task generators) and ``hub`` (loaders of the paper's hub sources);
* ``cues`` (the surface heuristics, their one tie rule, the cue check) and ``candidates``
  (answers, labels, the record that holds them);
* ``card`` (the data card), ``build`` (items, cells, layouts, splits, the course sets, the CLI) and
  ``policy`` (items whose answers a real policy model writes).

Entry points other modules use:

* ``schema.read_jsonl`` / ``write_jsonl`` / ``validate_record`` / ``load_official``;
  ``schema.answers(rec)`` (best first), ``schema.answer_scores(rec)``, ``schema.context_parts(rec)``,
  ``schema.with_context(rec, new_context)``;
* ``build.build_course_sets(out, ...)`` (what notebook 01 and ``python -m longrm_utils build`` run);
* ``cues.heuristic_ranking(rec, "longer" | "overlap")`` and ``cues.heuristic_item_score(rec, kind)``;
* ``generators.generate(task, n_tokens, text.counter_for(tokenizer))`` for one length-exact triplet;
  ``text.assemble`` for a context of an exact length.
"""
