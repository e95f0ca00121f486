"""verl's model build on CPU, in this environment (the cluster install's packages less CUDA:
verl 0.9.1, TRL 1.16, transformers 5.10): the composed config of a tiny run goes through verl's
own ``HFModelConfig`` (tokenizer, chat template, attention kernel) and ``FSDPEngine._build_module``
(``from_pretrained``, ``apply_monkey_patch``, gradient checkpointing), in a child process started
with the launcher's environment (``VERL_USE_EXTERNAL_MODULES`` is read at ``import verl``).

Run as a script, this file is that child: it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

HERE = Path(__file__).resolve()


def build_in_child(config_yaml: Path) -> dict:
    """The child's work: verl's actor module from the composed config, then one packed forward."""
    import tempfile

    import torch
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    config = OmegaConf.load(config_yaml)
    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    model_config.model_type = "language_model"
    dist.init_process_group("gloo", init_method=f"file://{tempfile.mktemp()}", rank=0, world_size=1)
    engine = FSDPEngine(model_config, actor.engine, actor.optim, actor.checkpoint)
    engine.use_remove_padding = bool(config.actor_rollout_ref.model.use_remove_padding)
    module = engine._build_module()  # what verl's FSDP worker builds before wrapping it
    module.eval()
    # verl's remove-padding forward: sequences packed into one row, attention_mask=None, position
    # ids restarting per sequence; sdpa must keep them apart (the same logits as one by one)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randint(5, 1000, (7,), generator=gen), torch.randint(5, 1000, (4,), generator=gen)
    with torch.no_grad():
        alone = torch.cat([module(input_ids=x[None]).logits[0] for x in (a, b)])
        pos = torch.cat([torch.arange(7), torch.arange(4)])[None]
        packed = module(input_ids=torch.cat([a, b])[None], attention_mask=None, position_ids=pos, use_cache=False)
    return {
        "module": type(module).__name__,
        "attn": module.config._attn_implementation,
        "checkpointing": bool(module.is_gradient_checkpointing),
        "packed_max_diff": float((packed.logits[0] - alone).abs().max()),
    }


def run_child(config_yaml: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HERE), str(config_yaml)], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """The composed verl config of a tiny countdown run (model materialised), as YAML."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from conftest import CONF
    from sec.backends import verl as vb
    from sec.workspace import Workspace, check_config

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["backend=verl", "profile=tiny", "task=countdown"])
    check_config(cfg)
    ws = Workspace(cfg, tmp_path_factory.mktemp("build") / "run")
    run = vb.build(ws, resolve_model=True)
    path = ws.run_dir / "verl_config.yaml"
    ws.run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(run.config, path, resolve=True)
    return path


def test_verl_builds_the_actor_with_the_launchers_environment(tiny_config):
    from sec.backends.verl.launch import verl_env

    r = run_child(tiny_config, verl_env(OmegaConf.create({"backend": {}})))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["module"] == "LlamaForCausalLM" and out["attn"] == "sdpa" and out["checkpointing"]
    assert out["packed_max_diff"] < 1e-4


def test_without_the_shim_verls_model_build_fails_on_trl_1_16(tiny_config):
    """Why the shim exists: verl's apply_monkey_patch imports a class TRL >= 1.13 lacks. When this
    starts passing without it (a verl or TRL release fixed it), drop sec/backends/verl/trl_compat.py."""
    from sec.backends.verl import trl_compat
    from sec.backends.verl.launch import verl_env

    assert trl_compat.needed()  # TRL 1.16 is installed next to verl
    env = verl_env(OmegaConf.create({"backend": {}}))  # the GPU path's environment
    env.pop("VERL_USE_EXTERNAL_MODULES")
    r = run_child(tiny_config, env)
    assert r.returncode != 0
    assert "cannot import name 'AutoModelForCausalLMWithValueHead' from 'trl'" in r.stderr


@pytest.mark.parametrize("prompt_format", ["chat", "plain"])
def test_verls_tokenizer_renders_the_prompts_the_trl_backend_renders(tmp_path, prompt_format):
    """The tokenizer and chat template verl's HFModelConfig loads from the composed config (with
    ``custom_chat_template`` for plain TinyZero prompts) turn a validation row's ``raw_prompt``
    into the exact text that sec.evaluate.render_prompt (the TRL backend, evaluation) feeds."""
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils.config import omega_conf_to_dataclass

    from conftest import CONF
    from sec.backends import verl as vb
    from sec.evaluate import render_prompt
    from sec.workspace import Workspace, check_config

    overrides = ["backend=verl", "profile=tiny", "task=countdown", f"model.prompt_format={prompt_format}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    check_config(cfg)
    ws = Workspace(cfg, tmp_path / "run")
    ws.setup()
    paths = vb.verl_paths(ws.run_dir)
    vb.write_run_files(ws, paths)
    config = vb.build(ws, resolve_model=True).config
    tokenizer = omega_conf_to_dataclass(config.actor_rollout_ref.model).tokenizer
    val = create_rl_dataset(config.data.val_files, config.data, tokenizer, None, is_train=False)
    ours = AutoTokenizer.from_pretrained(str(config.actor_rollout_ref.model.path))
    records = vb.val_records(ws)
    for i in range(len(val)):
        text = tokenizer.apply_chat_template(val[i]["raw_prompt"], add_generation_prompt=True, tokenize=False)
        assert text == render_prompt(records[i], ours, prompt_format)
    if prompt_format == "plain":
        assert text == records[-1]["prompt"]
    else:
        assert text.endswith("<|im_start|>assistant\n") and records[-1]["question"] in text


def test_ppo_critic_needs_flash_attn_in_one_line(tmp_path):
    """verl 0.9.1 loads PPO's critic with flash_attention_2 whatever the config says; without
    flash-attn the launcher refuses algorithm=ppo before starting verl."""
    import importlib.util

    from hydra import compose, initialize_config_dir

    from conftest import CONF
    from sec.backends.verl.launch import check_flash_attn
    from sec.errors import ConfigError
    from sec.workspace import Workspace

    if importlib.util.find_spec("flash_attn"):
        pytest.skip("flash-attn is installed here")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["backend=verl", "profile=tiny", "algorithm=ppo"])
    with pytest.raises(ConfigError, match=r"^algorithm=ppo on backend=verl needs flash-attn"):
        check_flash_attn(Workspace(cfg, tmp_path / "run"))


def test_shim_registers_the_stand_in_only_when_trl_lacks_the_class(monkeypatch):
    from sec.backends.verl import trl_compat

    monkeypatch.delitem(sys.modules, trl_compat.MODULE, raising=False)
    monkeypatch.setattr(trl_compat, "trl_version", lambda: (1, 12))
    assert not trl_compat.install() and trl_compat.MODULE not in sys.modules
    monkeypatch.setattr(trl_compat, "trl_version", lambda: None)
    assert not trl_compat.install()
    monkeypatch.setattr(trl_compat, "trl_version", lambda: (1, 16))
    assert trl_compat.install()
    from trl.experimental.ppo import AutoModelForCausalLMWithValueHead

    with pytest.raises(ImportError, match="AutoModelForTokenClassification failed first"):
        AutoModelForCausalLMWithValueHead.from_pretrained("x")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(build_in_child(Path(sys.argv[1]))))
