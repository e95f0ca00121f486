"""The curriculum testbed (docs/testbed.md): its task's levels and bare prompts, no test problem in
training or pre-training, the model build (a tiny version: deterministic from its seed, cached by its
settings, loaded by AutoModelForCausalLM / AutoTokenizer, generating), and the benchmark's configs."""

from __future__ import annotations

import json
import re

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF
from sec import testbed
from sec.models import resolve_model
from sec.tasks.data import load_task_data
from sec.tasks.rewards import puzzle_reward

TASK = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "arith_bare.yaml"))


def tiny_cfg(**pretrain) -> dict:
    """The testbed model's config shrunk to seconds: one layer of width 16, a few steps."""
    cfg = testbed.default_config()
    cfg["config"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg["config"]["num_key_value_heads"] = 2
    cfg["pretrain"].update(steps=3, batch_size=8, warmup_steps=1, exclude_test_items=30, **pretrain)
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_task_data({**TASK, "train_per_level": 400, "test_per_level": 200}, tmp_path_factory.mktemp("data"))


# ------------------------------------------------------------------------------------------ the task


def test_levels_are_two_term_sums_and_differences_with_bare_prompts(data):
    ops = {1: "+", 2: "+-", 3: "+", 4: "+-", 5: "+"}
    digits = {1: 2, 2: 2, 3: 3, 4: 3, 5: 4}
    for level, rows in data.groupby("level"):
        for r in rows.itertuples():
            m = re.fullmatch(r"(\d+)([+-])(\d+)=", r.prompt)
            assert m and r.question == r.prompt, r.prompt
            a, op, b = int(m[1]), m[2], int(m[3])
            assert op in ops[level] and max(a, b) <= 10 ** digits[level]
            expected = a + b if op == "+" else a - b
            assert json.loads(r.answer)["answer"] == str(expected)
            assert puzzle_reward(f"{expected}", r._asdict(), train=True, extraction="last_number") == 1.0
            wrong = puzzle_reward(
                f"{expected + 1}",
                r._asdict(),
                train=True,
                format_reward=TASK["format_reward"],
                extraction="last_number",
            )
            assert wrong == 0.0
    assert sorted(data.loc[data["split"] == "train", "level"].unique()) == [1, 2, 3, 4]
    assert sorted(data.loc[data["split"] == "test", "level"].unique()) == [1, 2, 3, 4, 5]
    # the easiest level has 101^2 distinct problems: 200 test problems leave most of it to train on
    train1 = data[(data["split"] == "train") & (data["level"] == 1)]
    assert train1["question"].nunique() > 350


def test_no_test_problem_is_trained_on_or_pre_trained_on(data):
    test = set(data.loc[data["split"] == "test", "question"])
    train = set(data.loc[data["split"] == "train", "question"])
    assert test and not test & train
    task = testbed.task_config("arith_bare")
    excluded = testbed.excluded_expressions(task, 200)
    assert test <= excluded  # the run's test split (200 per level) is inside the pre-training exclusion
    for level in (1, 2, 3, 4):
        stream = testbed._level_stream(task, level, seed=0, exclude=excluded)
        drawn = {next(stream)[0] for _ in range(3000)}
        assert not drawn & test, f"level {level}: a test problem in the pre-training stream"
    # without the exclusion the stream would meet them: the check above can fail
    stream = testbed._level_stream(task, 1, seed=0, exclude=set())
    assert {next(stream)[0] for _ in range(3000)} & test


# ------------------------------------------------------------------------------------------ the model


def test_tokenizer_is_one_token_per_character_without_added_tokens(tmp_path):
    tok = testbed.build_tokenizer()
    ids = tok("32-15=", add_special_tokens=True)["input_ids"]
    assert len(ids) == 6 and tok.convert_ids_to_tokens(ids) == list("32-15=")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok("a")["input_ids"] == [tok.unk_token_id]
    assert tok.decode([*tok("-17")["input_ids"], tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == "-17"


def test_tiny_build_is_deterministic_cached_and_loads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_cfg()
    a = testbed.materialise(cfg, tmp_path / "a")
    b = testbed.materialise(cfg, tmp_path / "b")
    assert a.name == b.name == f"testbed_lm-{testbed.cache_key(cfg)}"
    ma, mb = (AutoModelForCausalLM.from_pretrained(p) for p in (a, b))
    for (name, x), (_, y) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    record = json.loads((a / testbed.PRETRAIN_RECORD).read_text())
    assert record["cache_key"] == testbed.cache_key(cfg) and len(record["loss"]) == 1
    # another seed: other weights, another cache entry
    other = tiny_cfg(seed=1)
    assert testbed.cache_key(other) != testbed.cache_key(cfg)
    mc = AutoModelForCausalLM.from_pretrained(testbed.materialise(other, tmp_path / "a"))
    assert not torch.equal(mc.model.embed_tokens.weight, ma.model.embed_tokens.weight)
    # a second call finds the cached copy (no rebuild: the record is untouched)
    mtime = (a / testbed.PRETRAIN_RECORD).stat().st_mtime_ns
    assert testbed.materialise(cfg, tmp_path / "a") == a and (a / testbed.PRETRAIN_RECORD).stat().st_mtime_ns == mtime
    tok = AutoTokenizer.from_pretrained(a, padding_side="left")
    assert type(tok).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend") and len(tok) == 22
    enc = tok(["12+3=", "100-99="], return_tensors="pt", padding=True)
    out = ma.generate(**enc, do_sample=True, max_new_tokens=4, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2 and out.shape[1] <= enc["input_ids"].shape[1] + 4
    assert all(isinstance(t, str) for t in tok.batch_decode(out, skip_special_tokens=True))
    # through the project's model resolution, as a run loads it
    resolved = resolve_model(cfg, tmp_path / "a")
    assert (resolved.path, resolved.source) == (str(a), "pretrain")


def test_bad_pretrain_settings_are_one_clear_error(tmp_path):
    with pytest.raises(testbed.TestbedBuildError, match="lacks"):
        testbed.pretrain(tiny_cfg(mix={1: 0.5, 9: 0.5}))
    with pytest.raises(testbed.TestbedBuildError, match=r"no .*task/countdown_nope\.yaml"):
        testbed.cache_key(tiny_cfg(task="countdown_nope"))
    with pytest.raises(testbed.TestbedBuildError, match="basic_arithmetic"):
        testbed.cache_key(tiny_cfg(task="countdown"))
