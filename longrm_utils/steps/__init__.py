"""The verbs the notebooks call: judge into a run, train into a run, compare before and after.

A notebook cell is one or two calls into these modules (or into the module that owns the concept).
Each verb reads its inputs from the run directory, writes its outputs there, registers them as
artifacts and reuses what an earlier cell or notebook already produced.

* :mod:`.judging` -- judge models into ``judges/<id>``, reusing earlier predictions of the same items;
* :mod:`.analysis` and :mod:`.ablation` -- the failure analysis of a run's judges (notebook 03);
* :mod:`.stage1` -- Stage I SFT into ``models/<id>`` and its before/after (notebook 04);
* :mod:`.alignment` -- Stage II alignment, generative and scalar (notebooks 05 and 06);
* :mod:`.evaluation` -- the leaderboard, lineages and the paper comparison (notebook 07);
* :mod:`.scaling` -- the memory planner, launch configs and RM-guided sampling (notebook 08);
* :mod:`.lessons` -- the course's claims, measured, recorded in ``lessons.json`` and narrated (04-06).
"""
