"""verl's own trainer loop on the CPU (``backend=verl backend.device=cpu``): verl 0.9.1's
``main_ppo`` -> ``RayPPOTrainer.fit()`` with the project's curriculum, through verl's public
extension points (sec/backends/verl/cpu.py: a ``cpu`` platform, the FSDP engine for it, the ``hf``
rollout engine of sec/backends/verl/hf_rollout.py) and the replacements of
sec/backends/verl/replacements.py.

What runs for real here: Ray (logical GPUs), FSDP2 wrapping on gloo, the optimizer step, the
agent loop and the rollout server, weight sync through verl's naive checkpoint engine, verl's
reward loop, ``fit()`` with the dataset's ``on_batch_end``, checkpoint save and load, resume,
the launcher's kill and preemption paths. The runs use ``model=testbed_mini`` (a ~100k-parameter
version of the testbed's model, pre-trained once per cache in about a minute) on bare arithmetic,
whose groups have mixed rewards, so the curriculum's values move.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_launch import assert_clocks_are_run_varying

from conftest import CONF, ROOT
from sec import rundir
from sec.backends import verl as vb
from sec.backends.verl import replacements
from sec.backends.verl.config import device_settings
from sec.metrics import read_metrics, reproducible
from sec.workspace import ConfigError, Workspace, check_config

#: a run of verl's loop on the CPU in about a minute: the smoke profile's shape (4 SEC steps,
#: checkpoints and evaluations at steps 2 and 4) on the miniature testbed model, 4 problems x 8
#: rollouts per step
CPU_BASE = (
    "backend=verl",
    "backend.device=cpu",
    "profile=smoke",
    "train.prompts_per_step=4",
    "train.max_completion_length=8",
    "eval.max_problems_per_level=4",
    "backend.poll_s=1",
)
CPU_RUN = (*CPU_BASE, "model=testbed_mini", "task=arith_bare", "train.max_prompt_length=32")


def run_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def launch(*args: str, timeout: int = 900, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sec.launch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        **popen,
    )


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def train_records(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def steady(record: dict) -> dict:
    """A train record without the fields that differ between two runs of one config."""
    return reproducible(record)


def assert_same_train_records(run: Path, reference: Path) -> None:
    """Every train record of ``run`` equals ``reference``'s, wall-clock fields aside; the
    message names the differing fields (pytest's diff of two long lists cuts them off)."""
    got, want = [steady(r) for r in train_records(run)], [steady(r) for r in train_records(reference)]
    assert [r["step"] for r in got] == [r["step"] for r in want]
    diffs = {
        g["step"]: {k: (g.get(k), w.get(k)) for k in sorted(g.keys() | w.keys()) if g.get(k) != w.get(k)}
        for g, w in zip(got, want, strict=True)
    }
    assert not any(diffs.values()), {step: d for step, d in diffs.items() if d}


def curriculum_trace(run: Path, after: int = 0) -> dict[tuple[int, str], dict]:
    """The dataset's draw / update records after step ``after``, without wall-clock fields."""
    return {
        (r["step"], r["phase"]): steady(r)
        for r in jsonl(run / "verl" / "curriculum_metrics.jsonl")
        if r["step"] > after
    }


def verl_processes(run: Path) -> list[str]:
    """Processes whose command line names the run dir (verl's main_ppo, the launcher)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run) in line and "ps -eo" not in line]


# ------------------------------------------------------------------------------------------ replacements, platform


@pytest.mark.parametrize("r", replacements.REPLACEMENTS, ids=lambda r: f"{r.module}.{r.name}")
def test_each_replaced_verl_function_is_the_code_it_was_written_against(r):
    """When this fails, verl changed the function (see ``where``): re-read it, re-check the
    replacement (sec/backends/verl/replacements.py) and record the new digest."""
    assert r.source_digest() == r.source_sha256, f"verl changed {r.where}: {r.why}"


CHILD = r"""
import json, os, tempfile
import verl  # runs VERL_USE_EXTERNAL_MODULES
from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device, get_resource_name
from verl.utils import distributed
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
from verl.workers.rollout.replica import RolloutReplicaRegistry
out = {"device": get_device_name(), "backend": get_nccl_backend(), "resource": get_resource_name(),
       "hf": ("hf", "async") in _ROLLOUT_REGISTRY and "hf" in RolloutReplicaRegistry._registry,
       "replaced": hasattr(distributed.initialize_global_process_group_ray, "__sec_original__")}
if out["device"] == "cpu":
    from verl.workers.engine.base import EngineRegistry
    import torch
    out["engine"] = EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__
    dev = get_torch_device()
    out["memory"] = dev.max_memory_allocated() > 0 and dev.mem_get_info()[1] > 0
    dev.empty_cache(); dev.synchronize()
    os.environ.update(RANK="0", WORLD_SIZE="1", DIST_INIT_METHOD=f"file://{tempfile.mktemp()}")
    from verl.workers import engine_workers  # imports the (replaced) name at module load
    engine_workers.initialize_global_process_group_ray(timeout_second=None)
    out["process_group"] = str(torch.distributed.get_backend())
print(json.dumps(out))
"""


def run_child(env: dict[str, str]) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_MODULES")}
    r = subprocess.run([sys.executable, "-c", CHILD], env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_cpu_platform_is_chosen_by_name_and_the_gpu_path_is_unchanged():
    cfg = run_cfg("backend=verl", "backend.device=cpu")
    cpu = run_child(vb.verl_env_vars(cfg))
    assert cpu == {
        "device": "cpu",
        "backend": "gloo",
        "resource": "GPU",  # logical GPUs: verl's placement groups are unchanged
        "hf": True,
        "replaced": True,
        "engine": "FSDPEngineWithLMHead",
        "memory": True,
        "process_group": "cpu:gloo",
    }
    # the GPU path: without the CPU plugin and VERL_PLATFORM, verl detects its own platform (here
    # it falls back to nvidia), nothing is registered or replaced
    gpu = run_child(vb.verl_env_vars(run_cfg("backend=verl")))
    assert gpu == {"device": "cuda", "backend": "nccl", "resource": "GPU", "hf": False, "replaced": False}


def test_device_settings_and_their_errors():
    assert device_settings(run_cfg("backend=verl")) == ("cuda", "vllm", "fsdp")
    assert device_settings(run_cfg("backend=verl", "backend.device=cpu")) == ("cpu", "hf", "fsdp2")
    with pytest.raises(ConfigError, match=r"backend.device='tpu': expected one of \['cpu', 'cuda'\]"):
        device_settings(run_cfg("backend=verl", "backend.device=tpu"))
    with pytest.raises(ConfigError, match=r"rollout_engine='vllm' does not run on backend\.device=cpu"):
        device_settings(run_cfg("backend=verl", "backend.device=cpu", "backend.rollout_engine=vllm"))
    with pytest.raises(ConfigError, match=r"strategy='fsdp' does not run on backend\.device=cpu"):
        device_settings(run_cfg("backend=verl", "backend.device=cpu", "backend.strategy=fsdp"))


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_cpu_runs_compose_and_pass_verls_validation(tmp_path, algorithm):
    cfg = run_cfg(*CPU_RUN, f"algorithm={algorithm}")
    check_config(cfg)
    run = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False)
    c = run.config
    assert c.actor_rollout_ref.rollout.name == "hf" and c.actor_rollout_ref.actor.strategy == "fsdp2"
    assert c.trainer.device == "cpu" and c.actor_rollout_ref.rollout.full_determinism
    assert c.ray_kwargs.ray_init.num_gpus == 1 and c.ray_kwargs.ray_init.num_cpus >= 4
    assert c.actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype == "fp32"
    env = c.ray_kwargs.ray_init.runtime_env.env_vars
    assert env.VERL_PLATFORM == "cpu" and env.VERL_USE_EXTERNAL_MODULES.endswith("sec.backends.verl.cpu")
    assert c.actor_rollout_ref.rollout.seed == cfg.seed and c.algorithm.adv_estimator == algorithm


# ------------------------------------------------------------------------------------------ the hf rollout server


@pytest.fixture(scope="module")
def server(cache_dir):
    """An :class:`HFRolloutServer` on the tiny model, called directly (no Ray)."""
    from sec.backends.verl.hf_rollout import HFRolloutServer
    from sec.models import resolve_model

    path = resolve_model(OmegaConf.load(CONF / "model" / "tiny.yaml"), cache_dir).path
    rollout = OmegaConf.create(
        {"name": "hf", "prompt_length": 40, "response_length": 6, "dtype": "float32", "seed": 7, "max_num_seqs": 64}
    )
    rollout = OmegaConf.merge(vb.compose_verl_config([]).actor_rollout_ref.rollout, rollout)
    model = OmegaConf.create({"path": path, "override_config": {"attn_implementation": "sdpa"}})
    return HFRolloutServer(rollout, model)


def generate_all(server, requests: list[tuple[list[int], dict, str]]) -> list:
    async def go():
        return await asyncio.gather(*[server.generate(p, dict(s), rid) for p, s, rid in requests])

    return asyncio.run(go())


SAMPLE = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True, "repetition_penalty": 1.0}


def test_a_rows_rollout_does_not_depend_on_its_batch(server):
    """verl's full_determinism request ids (det-<row>) seed each request; the same request gives
    the same tokens and log-probs alone or among others of other lengths (bit for bit)."""
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, 2000, (int(n),), generator=g).tolist() for n in (5, 9, 17, 23, 31, 12)]
    together = generate_all(server, [(p, SAMPLE, f"det-{i}") for i, p in enumerate(prompts)])
    alone = [generate_all(server, [(p, SAMPLE, f"det-{i}")])[0] for i, p in enumerate(prompts)]
    assert [(o.token_ids, o.log_probs) for o in together] == [(o.token_ids, o.log_probs) for o in alone]
    assert all(1 <= len(o.token_ids) <= 6 and len(o.log_probs) == len(o.token_ids) for o in together)
    again = generate_all(server, [(prompts[0], SAMPLE, "det-0")])[0]
    other = generate_all(server, [(prompts[0], SAMPLE, "det-1")])[0]
    assert again.token_ids == together[0].token_ids and other.token_ids != together[0].token_ids
    assert together[0].extra_fields["global_steps"] == server.global_steps


def test_log_probs_are_the_models_at_the_sampling_temperature(server):
    prompt = list(range(100, 112))
    params = {**SAMPLE, "temperature": 0.7}
    out = generate_all(server, [(prompt, params, "det-3")])[0]
    ids = torch.tensor([prompt + out.token_ids])
    with torch.no_grad():
        logits = server.model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / 0.7
    want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(out.log_probs), want, atol=1e-4)
    greedy = generate_all(
        server, [(prompt, {**SAMPLE, "temperature": 0}, "a"), (prompt, {**SAMPLE, "temperature": 0}, "b")]
    )
    assert greedy[0].token_ids == greedy[1].token_ids  # temperature 0 is argmax, whatever the seed
    short = generate_all(server, [(prompt, {**SAMPLE, "max_tokens": 2}, "det-0")])[0]
    assert len(short.token_ids) <= 2


def test_bad_requests_and_weight_syncs_are_one_clear_error(server):
    with pytest.raises(ValueError, match=r"does not implement the sampling options \{'repetition_penalty': 1.2\}"):
        generate_all(server, [([5, 6], {**SAMPLE, "repetition_penalty": 1.2}, "x")])
    with pytest.raises(ValueError, match=r"longer than rollout\.prompt_length=40"):
        generate_all(server, [(list(range(41)), SAMPLE, "x")])
    state = {k: v.clone() for k, v in server.model.state_dict().items()}
    with pytest.raises(KeyError, match="names the model does not have"):
        asyncio.run(server.update_weights({**state, "nope.weight": torch.zeros(1)}))
    with pytest.raises(KeyError, match="the trainer sent no"):
        asyncio.run(server.update_weights({k: v for k, v in state.items() if "layers.0." not in k}))
    moved = {k: v + 0.5 if v.is_floating_point() else v for k, v in state.items() if k != "lm_head.weight"}
    asyncio.run(server.update_weights(moved, global_steps=3))
    assert server.global_steps == 3
    assert all(torch.equal(server.model.state_dict()[k], v) for k, v in moved.items())
    asyncio.run(server.update_weights({k: v for k, v in state.items() if k != "lm_head.weight"}, global_steps=0))


# ------------------------------------------------------------------------------------------ verl's loop, for real


@pytest.fixture(scope="module")
def sec_run(tmp_path_factory) -> Path:
    """One uninterrupted run of verl's loop on the CPU: 4 GRPO steps with curriculum=sec."""
    run = tmp_path_factory.mktemp("verl_cpu") / "sec"
    r = launch(*CPU_RUN, f"hydra.run.dir={run}")
    assert r.returncode == 0, (r.stderr[-3000:], (run / "verl" / "verl.log").read_text()[-5000:])
    return run


def test_verls_loop_trains_on_the_curriculums_draws_and_feeds_them_back(sec_run):
    train = train_records(sec_run)
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    log = jsonl(sec_run / "verl" / "curriculum_metrics.jsonl")
    draws = {r["step"]: r for r in log if r["phase"] == "draw"}
    updates = {r["step"]: r for r in log if r["phase"] == "update"}
    assert sorted(draws) == [1, 2, 3, 4] and sorted(updates) == [1, 2, 3]  # verl feeds back all but the last
    for step, update in updates.items():
        # the rows verl trained on (one per rollout) are the step's draws, each with its 8 rollouts
        assert update["fed_problems"] == sorted(p for p in draws[step]["problems"] for _ in range(8))
        assert len(draws[step]["problems"]) == 4
        # the next draw used the values of this update
        assert {k: v for k, v in draws[step + 1].items() if k.endswith("/q")} == {
            k: v for k, v in update.items() if k.endswith("/q")
        }
    q = [{k: v for k, v in r.items() if k.endswith("/q")} for r in train]
    assert q[0] and q[-1] != q[0], "the curriculum's values never moved"
    assert any(r.get("curriculum/abs_adv_mean", 0) > 0 for r in train)
    assert all(r["curriculum/fed_back"] for r in train[:3]) and not train[3]["curriculum/fed_back"]
    # the hf rollout's log-probs are the FSDP actor's (verl compares them every step)
    assert all(r["verl/training/rollout_probs_diff_max"] < 1e-3 for r in train)
    assert all(r["verl/actor/grad_norm"] > 0 for r in train) and train[-1]["learning_rate"] == pytest.approx(1e-5)
    assert (sec_run / rundir.DONE).exists()
    assert rundir.is_complete(sec_run / "checkpoints" / "global_step_2")
    # verl saves the last step too, but its loop ends before on_batch_end: no curriculum state there
    # (a finished run is not resumed; a rerun of an unfinished one resumes from step 2)
    last = sec_run / "checkpoints" / "global_step_4"
    assert (last / "actor").is_dir() and not rundir.is_complete(last)


def test_metrics_have_the_fields_of_a_trl_run(sec_run, tmp_path):
    """The same train / eval fields as the TRL backend writes for the same run (engine extras
    under trl/ and verl/ aside)."""
    trl = tmp_path / "trl"
    r = launch(
        *(a for a in CPU_RUN if not a.startswith("backend.")),
        "backend=trl",
        "backend.num_threads=1",
        f"hydra.run.dir={trl}",
    )
    assert r.returncode == 0, r.stderr[-3000:]

    def fields(run: Path, kind: str) -> set[str]:
        keys = {k for rec in read_metrics(run / "metrics.jsonl") if rec["kind"] == kind for k in rec}
        # per-arm rewards exist for the arms a step drew (draws differ between engines' rollouts)
        return {k for k in keys if not k.startswith(("trl/", "verl/")) and not k.endswith("/reward")}

    assert fields(sec_run, "train") - {"curriculum/fed_back"} == fields(trl, "train")
    assert fields(sec_run, "eval") == fields(trl, "eval")
    evals = [r for r in read_metrics(sec_run / "metrics.jsonl") if r["kind"] == "eval"]
    assert {(r["step"], r["split"]) for r in evals} == {
        (s, g) for s in (2, 4) for g in ("level_1", "level_2", "level_3", "level_4", "id", "ood")
    }
    assert {r["n_problems"] for r in evals if r["split"] == "level_1"} == {4}
    assert all(r["generation_s"] > 0 for r in train_records(sec_run)[1:])
    assert_clocks_are_run_varying(read_metrics(sec_run / "metrics.jsonl"))

    # the cross-engine comparison reads both runs (one seed, one curriculum: no paired rows)
    from analysis.cross_engine import markdown, per_run
    from analysis.load import load_runs

    rows = per_run(load_runs([sec_run, trl], finished_only=True))
    assert sorted(rows["backend"]) == ["trl", "verl"]
    assert {"level_1 first", "level_4 last"} <= set(rows.columns)
    text = markdown(rows)
    assert "| TRL | sec | 1 |" in text and "| verl (CPU) | sec | 1 |" in text


def test_a_killed_run_resumes_from_its_step_2_checkpoint_as_if_never_stopped(sec_run, tmp_path):
    """The GPU smoke command on the CPU, its first attempt killed outright (SIGKILL to the
    launcher's process group) once the step-2 checkpoint holds the curriculum state: verl dies with
    the launcher, the same command resumes there, and from then on the run is the uninterrupted
    run's, field by field."""
    run = tmp_path / "smoke"
    overrides = [a for a in CPU_RUN if a not in ("backend=verl", "profile=smoke")]
    r = subprocess.run(
        [sys.executable, "-m", "sec.backends.verl.smoke", "--interrupt", "kill", "--run-dir", str(run), *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert r.returncode == 0 and "verl smoke: PASS" in r.stdout, (r.stdout, r.stderr[-2000:])
    assert "resuming from step 2" in (run / "smoke" / "attempt2.log").read_text()
    assert not verl_processes(run)
    assert curriculum_trace(run) == curriculum_trace(sec_run, after=2)
    assert_same_train_records(run, sec_run)


#: stands in for submitit's handler inside a job: requeue (here: nothing) and exit
#: (submitit's local executor exits with 3 after a requeue; sec/preempt.py defers it)
JOB = """
import runpy, signal, sys
signal.signal(signal.SIGUSR2, lambda signum, frame: sys.exit(3))
sys.argv = ["sec.launch", *sys.argv[1:]]
runpy.run_module("sec.launch", run_name="__main__", alter_sys=True)
"""


def test_usr2_during_a_step_checkpoints_and_exits_for_requeue_then_the_rerun_continues(sec_run, tmp_path):
    """SLURM's preemption path (docs/slurm.md) with verl's loop: USR2 to the job's processes
    during step 1; the launcher has verl save at its next save point (step 2), stops it, hands
    over to the job runner (exit for requeue); the rerun resumes there, and no step is lost or
    repeated."""
    run = tmp_path / "usr2"
    args = [*CPU_RUN, f"hydra.run.dir={run}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with (tmp_path / "attempt1.log").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", JOB, *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 900
            log = run / "verl" / "curriculum_metrics.jsonl"
            while not any(r["phase"] == "draw" for r in jsonl(log)) and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "attempt1.log").read_text()[-3000:]
                time.sleep(0.2)
            assert not any(r["phase"] == "update" for r in jsonl(log)), "signal meant for step 1 came too late"
            os.killpg(proc.pid, signal.SIGUSR2)  # SLURM signals every process of the job step
            code = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = (tmp_path / "attempt1.log").read_text()
    assert code == 3, text[-3000:]
    assert "handing SIGUSR2 over to the job runner" in text
    assert rundir.newest_complete_checkpoint(run / "checkpoints", "verl")[0] == 2
    assert [r["step"] for r in train_records(run)] == [1, 2]
    assert not (run / rundir.DONE).exists() and not verl_processes(run)

    r = launch(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from step 2" in r.stderr + r.stdout
    assert [r["step"] for r in train_records(run)] == [1, 2, 3, 4]
    assert curriculum_trace(run) == curriculum_trace(sec_run, after=2)
    assert_same_train_records(run, sec_run)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        (*CPU_RUN, "curriculum=random"),
        (*CPU_RUN, "curriculum=ordered"),
        # a two-task mix (countdown x zebra: 6 arms) on the tiny random model: rewards are all 0,
        # the point is verl's loop with task x level arms
        (*CPU_BASE, "curriculum=sec_2d", "task=puzzles", "~task.components.arc", "model=tiny"),
        # the carry regime's comparison (issue 25) on its own model: sums levelled by carries
        ("experiment=testbed_carry", "profile=testbed_carry", *CPU_BASE[:2], *CPU_BASE[3:], "curriculum=sec"),
    ],
    ids=["random", "ordered", "sec_2d", "carry"],
)
def test_other_curricula_run_two_steps_of_verls_loop(tmp_path, overrides):
    run = tmp_path / "run"
    r = launch(*overrides, "train.steps=2", "train.save_every=0", "eval.every=0", f"hydra.run.dir={run}")
    assert r.returncode == 0, (r.stderr[-3000:], (run / "verl" / "verl.log").read_text()[-3000:])
    train = train_records(run)
    assert [t["step"] for t in train] == [1, 2] and train[0]["curriculum/fed_back"]
    arms = {k.split("/")[1] for k in train[0] if k.startswith("curriculum/") and k.endswith("/prob")}
    assert len(arms) == (6 if "curriculum=sec_2d" in overrides else 3)
    assert (run / rundir.DONE).exists()
