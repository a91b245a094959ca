"""Importing the official LongRM training data (train/official.py) in the layout of the release.

The fixtures are built with exactly the features of the release's ``dataset_info.json`` files
(LCM-Lab/LongRM, ``datas/SFT_Data_Sampled20/test/dataset_info.json`` and
``datas/SimPO_Data_Sampled20/train/dataset_info.json``), saved with ``save_to_disk`` as the
official scripts expect: a DatasetDict with the splits train, eval and test.
"""
from __future__ import annotations

import json
import shutil

import pytest

datasets = pytest.importorskip("datasets")

from longrm_utils.__main__ import main
from longrm_utils.contracts import read_pref_jsonl
from longrm_utils.io import InputError, read_jsonl
from longrm_utils.train import official

STR, INT = {"dtype": "string", "_type": "Value"}, {"dtype": "int64", "_type": "Value"}
MESSAGES = {"feature": {"content": STR, "role": STR}, "_type": "List"}
JUDGES = ("Llama-3.1-Nemotron-70B-Instruct-HF", "Llama-3.3-70B-Instruct", "MDCure-LLAMA3.1-70B-Instruct",
          "Qwen-plus", "Qwen2.5-72B-Instruct")
SFT_FEATURES = {"chat_template": MESSAGES, "golden": STR, "ctx_length": STR, "language": STR, "hop": INT,
                "org_pos": STR, "perspective": STR}
SIMPO_FEATURES = {
    "index": INT, "extra_generate_kwargs": {}, "paragraph_id": STR, "answer": STR, "sub-paragraphs": STR,
    "word count": STR, "Date": STR, "context": STR, "query": STR, "context_and_question": STR,
    "chosen_model": STR, "reject_models": {"feature": STR, "_type": "List"}, "scores": {j: INT for j in JUDGES},
    "conf": {"feature": INT, "_type": "List"}, "insert_index": INT, "chat_template": MESSAGES,
    "prompt_ctx_length": INT, "chosen": STR, "rejects": {"feature": STR, "_type": "List"}}


def prompt(i):
    return [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": f"doc {i} ... which is best?"}]


def sft_row(i, **kw):
    return {"chat_template": prompt(i), "golden": f"[Analysis] item {i} [[A]]", "ctx_length": "8k",
            "language": "en", "hop": 1, "org_pos": "0", "perspective": "faithfulness", **kw}


def simpo_row(index, conf=(3, 1, 1), **kw):
    return {"index": index, "extra_generate_kwargs": {}, "paragraph_id": f"p{index}", "answer": "a",
            "sub-paragraphs": "s", "word count": "100", "Date": "2025", "context": "long doc", "query": "q",
            "context_and_question": "long doc q", "chosen_model": JUDGES[0], "reject_models": list(JUDGES[1:]),
            "scores": {j: 9 - k for k, j in enumerate(JUDGES)}, "conf": list(conf), "insert_index": 0,
            "chat_template": prompt(index), "prompt_ctx_length": 8000, "chosen": f"good {index}",
            "rejects": [f"bad {index}.{k}" for k in range(4)], **kw}


def save(tmp_path, name, features, splits):
    f = datasets.Features.from_dict(features)
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(rows, features=f) for s, rows in splits.items()})
    dd.save_to_disk(str(tmp_path / name))
    return tmp_path / name


@pytest.fixture()
def simpo(tmp_path):
    return save(tmp_path, "SimPO_Data_Sampled20", SIMPO_FEATURES, {
        "train": [simpo_row(0), simpo_row(1, conf=(2, 2, 1)), simpo_row(2)],
        "eval": [simpo_row(0), simpo_row(1, conf=(5,))],
        "test": [simpo_row(0, conf=(1, 1, 1, 1, 1))]})


@pytest.fixture()
def sft(tmp_path):
    return save(tmp_path, "SFT_Data_Sampled20", SFT_FEATURES,
                {"train": [sft_row(0), sft_row(1), sft_row(2)], "eval": [sft_row(3)], "test": [sft_row(4)]})


# --- SimPO --------------------------------------------------------------------------------------------

def test_simpo_imports_every_split_with_unique_ids(simpo):
    out = official.load_official_simpo(simpo)
    items, rep = out["items"], out["report"]
    assert rep["rows"] == rep["imported"] == 6 and rep["skipped"] == {}
    assert {s: v["rows"] for s, v in rep["splits"].items()} == {"train": 3, "eval": 2, "test": 1}
    ids = [it.id for it in items]
    assert len(set(ids)) == 6 and ids[:4] == ["train:0", "train:1", "train:2", "eval:0"]
    it = items[0]
    assert [m["role"] for m in it.prompt] == ["system", "user"] and it.chosen == "good 0"
    assert it.rejects == [f"bad 0.{k}" for k in range(4)]
    assert it.meta["split"] == "train" and it.meta["index"] == 0 and it.meta["conf"] == [3, 1, 1]
    assert it.meta["scores"][JUDGES[0]] == 9 and it.meta["reject_models"] == list(JUDGES[1:])
    assert "context" not in it.meta  # the long duplicate columns are not carried along
    only = official.load_official_simpo(simpo, splits=["eval"])["items"]
    assert [i.id for i in only] == ["eval:0", "eval:1"]
    with pytest.raises(InputError, match="no split 'dev'"):
        official.load_official_simpo(simpo, splits=["dev"])


def test_min_conf_keeps_rows_whose_largest_vote_count_reaches_it(simpo):
    out = official.load_official_simpo(simpo, min_conf=3)
    assert [i.id for i in out["items"]] == ["train:0", "train:2", "eval:0", "eval:1"]
    rep = out["report"]
    assert rep["skipped"] == {"conf: largest vote count below min_conf 3": 2} and rep["min_conf"] == 3
    assert rep["splits"]["test"] == {"rows": 1, "imported": 0, "skipped": {"conf: largest vote count below min_conf 3": 1}}
    assert official.load_official_simpo(simpo, min_conf=2)["report"]["imported"] == 5


def test_bad_rows_are_skipped_and_counted_by_split_row_and_field(tmp_path):
    path = save(tmp_path, "bad", SIMPO_FEATURES, {
        "train": [simpo_row(0), simpo_row(1, rejects=[]), simpo_row(2, chosen=None), simpo_row(0)],
        "eval": [simpo_row(0, chat_template=prompt(0) + [{"role": "assistant", "content": "x"}]), simpo_row(1)]})
    rep = official.load_official_simpo(path)["report"]
    assert rep["rows"] == 6 and rep["imported"] == 2
    assert rep["splits"]["train"]["skipped"] == {"rejects: not a non-empty list of non-empty strings": 1,
                                                 "chosen: missing or not a non-empty string": 1,
                                                 "index: 0 repeats row 0 of this split": 1}
    assert rep["splits"]["eval"]["skipped"] == {"chat_template: ends with an assistant turn; expected the prompt only": 1}
    assert "split 'train' row 1 field 'rejects'" in rep["skip_examples"][0]
    assert any(e.startswith("split 'eval' row 0 field 'chat_template'") for e in rep["skip_examples"])


def test_single_split_folder_and_folder_without_dataset_dict_json(simpo, tmp_path):
    one = official.load_official_simpo(simpo / "eval")["items"]  # a lone Dataset: named after its folder
    assert [i.id for i in one] == ["eval:0", "eval:1"]
    bare = tmp_path / "bare"
    shutil.copytree(simpo, bare)
    (bare / "dataset_dict.json").unlink()
    assert official.load_official_simpo(bare)["report"]["imported"] == 6


def test_jsonl_rows_of_the_same_layout(simpo, tmp_path):
    datasets.load_from_disk(str(simpo))["test"].to_json(str(tmp_path / "test.jsonl"))
    items = official.load_official_simpo(tmp_path / "test.jsonl")["items"]
    assert [i.id for i in items] == ["test:0"] and items[0].meta["conf"] == [1, 1, 1, 1, 1]
    assert official.looks_official(tmp_path / "test.jsonl") and official.looks_official(simpo)


def test_other_layouts_and_nothing_usable_raise(tmp_path):
    path = save(tmp_path, "other", {"text": STR}, {"train": [{"text": "x"}]})
    with pytest.raises(InputError, match="split 'train' has no column 'chat_template'"):
        official.load_official_simpo(path)
    with pytest.raises(InputError, match="no column 'golden'"):
        official.load_official_sft(save(tmp_path, "nogolden", {"chat_template": MESSAGES},
                                        {"train": [{"chat_template": prompt(0)}]}))
    bad = save(tmp_path, "allbad", SIMPO_FEATURES, {"train": [simpo_row(0, rejects=[])]})
    with pytest.raises(InputError, match="none of 1 rows"):
        official.load_official_simpo(bad)
    with pytest.raises(InputError, match="no such file or folder"):
        official.load_official_simpo(tmp_path / "missing")


# --- SFT ----------------------------------------------------------------------------------------------

def test_sft_prompt_from_chat_template_judgement_from_golden(sft):
    ex, rep = official.load_official_sft(sft)
    assert rep["imported"] == rep["rows"] == 5
    assert {s: v["imported"] for s, v in rep["splits"].items()} == {"train": 3, "eval": 1, "test": 1}
    assert [e["id"] for e in ex] == ["train:0", "train:1", "train:2", "eval:0", "test:0"]
    e = ex[3]
    assert e["split"] == "eval" and [m["role"] for m in e["prompt"]] == ["system", "user"]
    assert e["completion"] == [{"role": "assistant", "content": "[Analysis] item 3 [[A]]"}]
    assert e["ctx_length"] == "8k" and e["hop"] == 1 and e["perspective"] == "faithfulness"


def test_sft_bad_rows_are_skipped_with_reasons(tmp_path):
    path = save(tmp_path, "sft", SFT_FEATURES, {"train": [
        sft_row(0), sft_row(1, golden=None), sft_row(2, golden="  "),
        sft_row(3, chat_template=prompt(3) + [{"role": "assistant", "content": "old"}]), sft_row(4, chat_template=[])]})
    ex, rep = official.load_official_sft(path)
    assert [e["id"] for e in ex] == ["train:0"]
    assert rep["skipped"] == {"golden: missing or not a non-empty string": 2,
                              "chat_template: ends with an assistant turn; expected the prompt only": 1,
                              "chat_template: not a non-empty list of {role, content} messages": 1}


# --- the command --------------------------------------------------------------------------------------

def test_cli_simpo_writes_preference_items(simpo, tmp_path, capsys):
    out = tmp_path / "prefs.jsonl"
    assert main(["import-official", "simpo", str(simpo), "--out", str(out), "--min-conf", "3"]) == 0
    printed = capsys.readouterr().out
    assert "train    rows      3  imported      2  skipped      1" in printed
    assert "skipped 1 x conf: largest vote count below min_conf 3" in printed
    assert "total    rows      6  imported      4  skipped      2" in printed
    lines = read_jsonl(out)
    assert [ln["meta"]["split"] for ln in lines] == ["train", "train", "eval", "eval"]
    assert set(lines[0]) == {"id", "prompt", "chosen", "rejects", "meta"}
    items = read_pref_jsonl(out)  # what `train align-gen --data` reads
    assert [i.id for i in items] == ["train:0", "train:2", "eval:0", "eval:1"] and len(items[0].rejects) == 4
    assert not official.looks_official(out)


def test_cli_sft_and_errors(sft, tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    assert main(["import-official", "sft", str(sft), "--out", str(out), "--splits", "train,test"]) == 0
    assert [json.loads(ln)["id"] for ln in out.read_text().splitlines()] == ["train:0", "train:1", "train:2", "test:0"]
    assert "wrote 4 lines" in capsys.readouterr().out
    assert main(["import-official", "simpo", str(tmp_path / "nope"), "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"longrm import-official: error: {tmp_path / 'nope'}: no such file or folder"
    assert not (tmp_path / "x.jsonl").exists()
    # --min-conf is a SimPO option: argparse refuses it for sft, on the one-line error path
    assert main(["import-official", "sft", str(sft), "--out", str(out), "--min-conf", "2"]) == 2
    assert "--min-conf" in capsys.readouterr().err
