"""Stage II data: pointwise split, consistency voting (consensus, drops, ties), the CPU pairwise
route, and the import of the official LongRM SimPO layout (train/stage2_data.py, train/official.py)."""

import pytest

from longrm_utils.judge import parse
from longrm_utils.contracts import pref_items_from_records
from longrm_utils.train import evidence, official, stage2_data


def _record(i: int, tasktype: str = "PairWise") -> dict:
    ev = f"The museum of Vell{i} opened in {1900 + i}."
    ctx = f"The river runs east of town {i}.\n\n{ev}\n\nThe market sells red apples on day {i}."
    user = f"Read the document.\n<context>{ctx}</context>\nQuestion: When did the museum of Vell{i} open?"
    span = [user.index(ctx), user.index(ctx) + len(ctx)]
    rec = {"id": f"LongQA-short-{i:04d}", "prompt_template": [{"role": "user", "content": user}],
           "question": f"When did the museum of Vell{i} open?", "source": "test", "task": "LongQA", "subtask": "qa",
           "tasktype": tasktype, "ctx_length_for_length": "short", "ctx_length_for_words": 30, "length": 40,
           "words_count": 30,
           "meta": {"golden": f"It opened in {1900 + i}.", "evidence": [ev], "context_span": span}}
    good, bad = f"The museum opened in {1900 + i}.", f"The museum opened in {1800 + i}."
    if tasktype == "PairWise":
        rec.update(subtype="same", chosen=good, rejected=bad, chosen_model="m", rejected_model="m")
        rec["meta"]["scores"] = [1.0, 0.2]
    else:
        rec.update(subtype="3", candidates=[good, f"It opened around {1900 + i}, maybe.", bad],
                   candidates_model=["m", "m", "m"], candidates_score=[1.0, 0.6, 0.1])
    return rec


def V(judge, rank, score, text=None):
    return stage2_data.Vote(judge, rank, score, text or f"[Analysis] {judge} [Score: {score}]")


# --- voting ---------------------------------------------------------------------------------------

def test_consensus_picks_majority_and_rejects_the_outliers():
    votes = [V("j0", 0, 8), V("j1", 1, 9), V("j2", 2, 8), V("j3", 3, 2), V("j4", 4, 5)]
    r = stage2_data.vote(votes, tolerance=1, min_agreement=0.5, V=2)
    assert r.status == "ok"
    assert {v.judge for v in r.consensus} == {"j0", "j1", "j2"}
    assert r.conf == pytest.approx(3 / 5)
    # mean of {8, 9, 8} is 8.33: j0 and j2 are equally close, j0 ranks higher
    assert r.chosen.judge == "j0"
    # furthest from the consensus first
    assert [v.judge for v in r.rejects] == ["j3", "j4"]
    assert [v.judge for v in stage2_data.vote(votes, V=1).rejects] == ["j3"]


def test_no_consensus_and_no_reject_are_dropped():
    spread = [V("a", 0, 1), V("b", 1, 4), V("c", 2, 7), V("d", 3, 10)]
    assert stage2_data.vote(spread, tolerance=1).status == "no_consensus"
    split = [V("a", 0, 2), V("b", 1, 2), V("c", 2, 8), V("d", 3, 8)]  # 50/50 is not a consensus
    assert stage2_data.vote(split, tolerance=1, min_agreement=0.5).status == "no_consensus"
    agree = [V("a", 0, 7), V("b", 1, 8), V("c", 2, 7)]
    assert stage2_data.vote(agree, tolerance=1).status == "no_reject"
    assert stage2_data.vote([V("a", 0, 7), V("b", 1, None, "rambling")], min_votes=2).status == "too_few_votes"


def test_ties_are_broken_by_judge_rank():
    # two clusters of equal size: the one holding the best-ranked judge wins
    votes = [V("weak1", 3, 2), V("strong", 0, 8), V("weak2", 2, 2), V("mid", 1, 8), V("x", 4, 5)]
    r = stage2_data.vote(votes, tolerance=0, min_agreement=0.3)
    assert r.status == "ok" and r.center == 8 and r.chosen.judge == "strong"
    # equal distance from the centre among the rejects: rank decides their order
    assert [v.judge for v in r.rejects[:2]] == ["weak2", "weak1"]
    # swapping which judge is strongest swaps the winner
    votes2 = [stage2_data.Vote(v.judge, {"weak1": 0, "strong": 3}.get(v.judge, v.rank), v.score, v.text) for v in votes]
    assert stage2_data.vote(votes2, tolerance=0, min_agreement=0.3).center == 2


def test_unparsed_outputs_become_rejects_after_outliers():
    votes = [V("a", 0, 8), V("b", 1, 8), V("c", 2, 8), stage2_data.Vote("d", 3, None, "no score here"), V("e", 4, 1)]
    r = stage2_data.vote(votes, V=2)
    assert [v.judge for v in r.rejects] == ["e", "d"]


# --- the pointwise route end to end ------------------------------------------------------------------

def test_pointwise_split_and_voting_with_rule_judges():
    recs = [_record(i) for i in range(3)] + [_record(9, "BestOfN")]
    tasks, skipped = stage2_data.pointwise_tasks(recs)
    assert len(tasks) == 3 * 2 + 3 and not skipped
    assert len({t.key for t in tasks}) == len(tasks)
    t0 = tasks[0]
    assert t0.response == recs[0]["chosen"] and t0.true_rank == 0
    assert "museum of Vell0" in t0.messages[-1]["content"] and "[Score: N]" in t0.messages[-1]["content"]
    RJ = stage2_data.RuleJudge
    judges = [RJ("label", 0, "label"), RJ("rank", 1, "rank", n_responses=2), RJ("label2", 2, "label", quote_words=4),
              RJ("overlap", 3, "overlap")]
    votes = stage2_data.collect_votes(tasks, judges)
    assert all(len(vs) == 4 for vs in votes.values())
    assert all(v.score is not None for vs in votes.values() for v in vs)
    items, rep, results = stage2_data.consistency_vote(tasks, votes, V=2, tolerance=1)
    assert rep.tasks == len(tasks) and sum(rep.status.values()) == len(tasks)
    assert rep.items == len(items) == rep.status["ok"]
    for it in items:
        r = results[it.id]
        assert it.chosen == r.chosen.text and parse.parse_score(it.chosen)[0] is not None
        assert all(abs(parse.parse_score(x)[0] - r.center) > 1 for x in it.rejects)
        assert it.prompt == next(t.messages for t in tasks if t.key == it.id)
    # the items feed the aligner's validator unchanged
    pref_items_from_records([{"id": i.id, "prompt": i.prompt, "chosen": i.chosen, "rejects": i.rejects}
                             for i in items])


def test_pointwise_tasks_without_labels_are_counted():
    rec = _record(1)
    del rec["meta"]["golden"]
    tasks, skipped = stage2_data.pointwise_tasks([rec])
    assert skipped["no_labels_for_rule_judges"] == 1 and all(t.focus is None for t in tasks)
    assert stage2_data.RuleJudge("r", 0).judge(tasks[0]) is None


# --- the CPU route ------------------------------------------------------------------------------------

def test_pairwise_preferences_cover_both_orders_with_correct_verdicts():
    recs = [_record(i) for i in range(4)] + [_record(7, "BestOfN")]
    items, counts = stage2_data.pairwise_preferences(recs, V=2)
    assert counts["not_pairwise"] == 1 and counts["items"] == len(items) == 8
    assert counts["best_slot_A"] == counts["best_slot_B"] == 4
    for it in items:
        best = it.meta["best_slot"]
        assert parse.parse_pairwise(it.chosen).ranking == ([0, 1] if best == "A" else [1, 0])
        for rej in it.rejects:
            assert parse.parse_pairwise(rej).ranking == ([1, 0] if best == "A" else [0, 1])
        assert len(it.rejects) == 2 and it.rejects[1] != it.chosen
        # the flipped reject keeps the chosen analysis: only the verdict differs
        assert it.rejects[1].rsplit("[[", 1)[0] == it.chosen.rsplit("[[", 1)[0]
    assert len(stage2_data.pairwise_preferences(recs, V=1)[0][0].rejects) == 1


def test_flip_verdict_needs_a_verdict():
    assert stage2_data.flip_verdict("A is right.\n[[A]]") == "A is right.\n[[B]]"
    with pytest.raises(evidence.SynthError, match="no \\[\\[A\\]\\]"):
        stage2_data.flip_verdict("no verdict")


# --- the official SimPO layout -------------------------------------------------------------------------

def test_official_simpo_rows_become_preference_items(tmp_path):
    """The release's layout (LCM-Lab/LongRM datas/SimPO_Data_Sampled20/train/dataset_info.json, the
    columns the importer reads): every split, ids split:index, 4 rejects, scores keyed by model and
    conf a list of vote counts. More in test_official_import.py."""
    from datasets import Dataset, DatasetDict

    prompt = [{"role": "system", "content": "judge"}, {"role": "user", "content": "long doc ... rate it"}]

    def row(i, conf):
        return {"index": i, "chat_template": prompt, "chosen": "[Analysis] good [Score: 9]",
                "rejects": [f"[Analysis] bad {k} [Score: 2]" for k in range(4)], "scores": {"m0": 9, "m1": 2},
                "conf": conf, "prompt_ctx_length": 16000}

    DatasetDict(train=Dataset.from_list([row(0, [3, 1, 1]), row(1, [2, 2, 1])]),
                eval=Dataset.from_list([row(0, [4, 1])])).save_to_disk(str(tmp_path / "ds"))
    out = official.load_official_simpo(tmp_path / "ds")
    assert [i.id for i in out["items"]] == ["train:0", "train:1", "eval:0"]
    a = out["items"][0]
    assert a.prompt[-1]["role"] == "user" and len(a.rejects) == 4 and a.meta["prompt_ctx_length"] == 16000
    assert a.meta["split"] == "train" and a.meta["conf"] == [3, 1, 1] and a.meta["scores"] == {"m0": 9, "m1": 2}
    pref_items_from_records([{"id": i.id, "prompt": i.prompt, "chosen": i.chosen, "rejects": i.rejects}
                             for i in out["items"]])
    assert [i.id for i in official.load_official_simpo(tmp_path / "ds", min_conf=3)["items"]] == ["train:0", "eval:0"]


def test_record_preferences_take_best_as_chosen():
    recs = [_record(0), _record(1, "BestOfN")]
    items, counts = stage2_data.record_preferences(recs, V=3)
    assert counts == {"PairWise": 1, "BestOfN": 1}
    assert items[0].chosen == recs[0]["chosen"] and items[0].rejects == [recs[0]["rejected"]]
    assert items[1].chosen == recs[1]["candidates"][0] and items[1].rejects == recs[1]["candidates"][1:]
    assert stage2_data.record_preferences(recs, V=1)[0][1].rejects == recs[1]["candidates"][1:2]
    assert stage2_data.record_preferences(recs, tasktypes=("PairWise",))[1]["skipped_tasktype"] == 1


def test_pad_records_reaches_the_target_and_keeps_evidence(tiny):
    recs = [_record(i) for i in range(6)]
    same, sk = stage2_data.pad_records(recs, tiny.tokenizer, None)
    assert same == recs and not sk
    from longrm_utils.bench import schema

    out, skipped = stage2_data.pad_records(recs[:2], tiny.tokenizer, 120, pool_records=recs)
    assert len(out) + sum(skipped.values()) == 2
    for r, orig in zip(out, recs):
        ctx = schema.context_parts(r)[1]
        assert len(tiny.tokenizer.encode(ctx, add_special_tokens=False)) == 120
        assert orig["meta"]["evidence"][0] in ctx
    _, skipped = stage2_data.pad_records(recs[:1], tiny.tokenizer, 5, pool_records=recs)  # shorter than the evidence
    assert sum(skipped.values()) == 1
