"""The verl split (sec/backends/verl/ package, constants in sec_ppo_trainer.yaml) composes the same
verl config as ``main`` did before it (tests/fixtures/verl_configs_main.json, recorded by
tests/fixtures/record_verl_configs.py at 5a55d83), except the intentional changes listed here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from fixtures.record_verl_configs import CASES, OUT, normalise
from sec.backends import verl as vb

RECORDED = json.loads(OUT.read_text())

#: leaf paths whose value changed on purpose, and why
SDPA = "sdpa by default (backend.attn_implementation): the gpu extra has no flash-attn (issue 13)"
INTENDED = {
    "actor_rollout_ref.model.override_config.attn_implementation": SDPA,
    "critic.model.override_config.attn_implementation": SDPA,
    "ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES": "the TRL shim in every Ray worker",
}
#: released SEC scripts: 64 problems per optimizer step with batch 256 (issue 13, item 4); verl
#: derives the critic's mini-batch from the actor's
MINI_BATCH = {"actor_rollout_ref.actor.ppo_mini_batch_size", "critic.ppo_mini_batch_size"}


def leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: d}


@pytest.mark.parametrize("name,overrides", CASES, ids=[c[0] for c in CASES])
def test_split_composes_the_config_main_composed(tmp_path, name, overrides):
    from hydra import compose, initialize_config_dir

    from conftest import CONF
    from sec.workspace import Workspace, check_config

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["backend=verl", *overrides])
    check_config(cfg)
    ws = Workspace(cfg, tmp_path / name)
    config = OmegaConf.to_container(vb.build(ws, resolve_model=False).config, resolve=True)
    now = leaves(json.loads(normalise(json.dumps(config, sort_keys=True), ws.run_dir, Path(ws.cache_dir))))
    before = leaves(RECORDED[name]["config"])
    changed = {k for k in now.keys() | before.keys() if now.get(k, "<absent>") != before.get(k, "<absent>")}
    # an empty map that now has keys (override_config: {} -> {attn_implementation: ...})
    changed -= {k for k in changed if before.get(k) == {} and any(n.startswith(k + ".") for n in now)}
    batch = int(cfg.train.prompts_per_step)
    expected = set(INTENDED) | (MINI_BATCH if batch > 64 else set())
    assert changed == expected, {k: (before.get(k, "<absent>"), now.get(k, "<absent>")) for k in changed ^ expected}
    assert now["actor_rollout_ref.actor.ppo_mini_batch_size"] == min(64, batch)
    assert now["actor_rollout_ref.model.override_config.attn_implementation"] == "sdpa"
