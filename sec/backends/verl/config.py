"""The run config mapped onto verl's config: the keys that depend on the run, as Hydra overrides.

The keys every SEC run sets to the same value live in ``sec_ppo_trainer.yaml`` beside this file
(a delta over verl's packaged ``ppo_trainer``); :func:`verl_overrides` adds the rest, read from
the run config (``train``, ``eval``, ``algorithm``, ``model``, ``backend``, SEC.md §3 values).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sec.backends.verl.paths import VerlPaths
from sec.errors import ConfigError

#: ``model.prompt_format=plain``: the prompt text is the whole model input (TinyZero's format,
#: no chat markup); verl renders every prompt through the tokenizer's chat template, so the
#: template passes the user turn through unchanged.
PASSTHROUGH_TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"
#: algorithm -> verl's ``algorithm.adv_estimator`` (verl/trainer/ppo/core_algos.py)
ADV_ESTIMATORS = {"grpo": "grpo", "rloo": "rloo", "ppo": "gae"}
#: imported at ``import verl`` in the driver and every Ray worker (verl's VERL_USE_EXTERNAL_MODULES)
TRL_COMPAT = "sec.backends.verl.trl_compat"
#: ``backend.device=cpu``: the CPU platform, FSDP engine and ``hf`` rollout (sec/backends/verl/cpu.py)
CPU_PLUGIN = "sec.backends.verl.cpu"
#: ``backend.device`` -> (rollout engine, FSDP strategy) when ``backend.rollout_engine`` /
#: ``backend.strategy`` are null
DEVICE_DEFAULTS = {"cuda": ("vllm", "fsdp"), "cpu": ("hf", "fsdp2")}
#: rollout engines and strategies that run on each device
DEVICE_ALLOWS = {"cuda": ({"vllm", "sglang", "trtllm"}, {"fsdp", "fsdp2"}), "cpu": ({"hf"}, {"fsdp2"})}


def device_settings(cfg: DictConfig) -> tuple[str, str, str]:
    """(device, rollout engine, FSDP strategy) of a run: ``backend.device`` (``cuda``, the
    default: GPUs with vLLM and NCCL; ``cpu``: verl's own loop on this machine's CPU, rollout
    ``hf``, gloo, FSDP2; docs/verl.md), with ``backend.rollout_engine`` / ``backend.strategy``
    defaulting per device.

    Raises:
        ConfigError: an unknown device, or an engine / strategy that does not run on it (vLLM on
            the CPU, FSDP1 on the CPU: its loader formats the device as ``cpu:<index>``).
    """
    be = cfg.backend
    device = str(be.get("device") or "cuda")
    if device not in DEVICE_DEFAULTS:
        raise ConfigError(f"backend.device={device!r}: expected one of {sorted(DEVICE_DEFAULTS)}")
    engine = str(be.get("rollout_engine") or DEVICE_DEFAULTS[device][0])
    strategy = str(be.get("strategy") or DEVICE_DEFAULTS[device][1])
    engines, strategies = DEVICE_ALLOWS[device]
    if engine not in engines:
        raise ConfigError(
            f"backend.rollout_engine={engine!r} does not run on backend.device={device} (use {sorted(engines)})"
        )
    if strategy not in strategies:
        raise ConfigError(
            f"backend.strategy={strategy!r} does not run on backend.device={device} (use {sorted(strategies)})"
        )
    return device, engine, strategy


def remove_padding(cfg: DictConfig) -> bool:
    """verl's ``use_remove_padding`` (sequences of a micro-batch packed into one row):
    ``backend.use_remove_padding``, or when null, on for cuda and off for cpu. With the ``sdpa``
    kernel a packed row's attention mask is block-diagonal over all its tokens, so its cost grows
    with the square of the micro-batch's tokens; flash-attn's varlen kernel has no mask, but the
    CPU has no flash-attn, and padded rows of a few dozen tokens are cheaper there (a testbed step's
    update: 2.1 s padded vs 2.6 s packed, benchmarks/verl_cpu_speed.py)."""
    value = cfg.backend.get("use_remove_padding")
    return device_settings(cfg)[0] == "cuda" if value is None else bool(value)


def override_value(v: Any) -> str:
    """A Python value as a Hydra override value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]+", s) and s not in ("true", "false", "null"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted(s: str) -> str:
    """A string as a quoted Hydra override value (stays a string: Ray's env_vars take strings only)."""
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def model_path(cfg: DictConfig, cache_dir: str | Path, *, resolve: bool) -> tuple[str, str | None]:
    """What verl loads the policy (and PPO's critic) from, and the source it came from.

    ``resolve=False`` (dry run) names the path without touching the network or writing files:
    ``local_path`` or the hub id, or for the models it builds (packaged, random, pre-trained,
    warm-up) the cache directory :func:`sec.models.resolve_model` materialises them into
    (:func:`sec.models.planned_path`).
    """
    m = cfg.model
    if resolve:
        from sec.models import resolve_model

        resolved = resolve_model(m, cache_dir)
        return resolved.path, resolved.source
    from sec.models import planned_path

    return planned_path(m, cache_dir), None


def check_batch(cfg: DictConfig) -> int:
    """The PPO mini-batch (problems per optimizer step) of a run, after checking that the batch
    splits over the GPUs and into mini-batches.

    ``backend.ppo_mini_batch_size`` is capped at the batch (``train.prompts_per_step``): the small
    profiles (batch 2) take one optimizer step per batch.

    Raises:
        ConfigError: for an algorithm verl has no estimator for here, rollouts that do not split
            evenly over the GPUs, or a batch that is not a multiple of the mini-batch.
    """
    algo, be = cfg.algorithm, cfg.backend
    if algo.name not in ADV_ESTIMATORS:
        raise ConfigError(f"backend=verl offers algorithm={'|'.join(ADV_ESTIMATORS)}, not {algo.name!r}")
    batch = int(cfg.train.prompts_per_step)
    rollouts = batch * int(algo.num_generations)
    gpus = int(be.nnodes) * int(be.n_gpus_per_node)
    if rollouts % gpus:
        raise ConfigError(
            f"train.prompts_per_step x algorithm.num_generations = {rollouts} rollouts "
            f"must split evenly over backend.nnodes x backend.n_gpus_per_node = {gpus} GPUs"
        )
    mini = min(int(be.ppo_mini_batch_size), batch)
    if mini <= 0 or batch % mini:
        raise ConfigError(
            f"train.prompts_per_step = {batch} must be a multiple of backend.ppo_mini_batch_size = {mini}"
        )
    return mini


def _algorithm_keys(cfg: DictConfig) -> dict[str, Any]:
    """SEC.md §3: no KL, GAE lambda = gamma = 1 for PPO, clip epsilon, group-std scaling."""
    algo = cfg.algorithm
    return {
        "algorithm.adv_estimator": ADV_ESTIMATORS[str(algo.name)],
        "algorithm.gamma": float(algo.get("gamma", 1.0)),
        "algorithm.lam": float(algo.get("gae_lambda", 1.0)),
        "algorithm.norm_adv_by_std_in_grpo": str(algo.get("scale_rewards", "group")) == "group",
    }


def dynamic_sampling_keys(cfg: DictConfig) -> dict[str, Any]:
    """``train.dynamic_sampling`` as verl's DAPO group filter (sec/dynamic_sampling.py): filter on
    compute_score's ``acc`` (the task's correctness, not the shaped training reward),
    ``max_num_gen_batches`` = ``train.max_draws_per_step``, ``data.gen_batch_size`` =
    ``train.groups_per_draw``; no keys when it is off.

    verl 0.9.1 applies ``algorithm.filter_groups`` in its v1 trainer only
    (``verl/trainer/ppo/v1/replay_buffer.py``); the legacy ``RayPPOTrainer`` that SEC's sampler runs in
    (``trainer.use_v1=false``) reads ``gen_batch_size`` and ignores the filter, so a run refuses
    (:func:`check_dynamic_sampling`).

    Raises:
        ConfigError: see :meth:`sec.dynamic_sampling.DynamicSampling.from_config`.
    """
    from sec.dynamic_sampling import DynamicSampling

    ds = DynamicSampling.from_config(cfg.train)
    if ds is None:
        return {}
    return {
        "algorithm.filter_groups.enable": True,
        "algorithm.filter_groups.metric": "acc",
        "algorithm.filter_groups.max_num_gen_batches": ds.max_draws,
        "data.gen_batch_size": ds.groups_per_draw,
    }


def check_dynamic_sampling(config: DictConfig) -> None:
    """Refuse a composed verl config whose group filter its trainer would ignore (see
    :func:`dynamic_sampling_keys`).

    Raises:
        ConfigError: ``algorithm.filter_groups.enable`` with ``trainer.use_v1=false``.
    """
    fg = config.algorithm.get("filter_groups") or {}
    if bool(fg.get("enable", False)) and not bool(config.trainer.get("use_v1", False)):
        raise ConfigError(
            "train.dynamic_sampling=true: verl 0.9.1 filters groups (algorithm.filter_groups) only in its v1 "
            "trainer, and SEC's curriculum sampler runs in the legacy RayPPOTrainer (trainer.use_v1=false), "
            "which would ignore the filter; use backend=trl for dynamic sampling"
        )


def _data_keys(cfg: DictConfig, paths: VerlPaths) -> dict[str, Any]:
    return {
        "data.train_files": str(paths.train_file),
        "data.val_files": str(paths.val_file),
        "data.train_batch_size": int(cfg.train.prompts_per_step),
        "data.max_prompt_length": int(cfg.train.max_prompt_length),
        "data.max_response_length": int(cfg.train.max_completion_length),
        "data.seed": int(cfg.seed),
    }


def _actor_keys(cfg: DictConfig, model: str, mini_batch: int, max_tokens: int) -> dict[str, Any]:
    """Policy model and optimizer (Adam lr 1e-6, betas (0.9, 0.99), no warm-up; SEC.md §3)."""
    train, algo, be = cfg.train, cfg.algorithm, cfg.backend
    actor = "actor_rollout_ref.actor"
    return {
        "actor_rollout_ref.model.path": model,
        "actor_rollout_ref.model.use_remove_padding": remove_padding(cfg),
        f"{actor}.strategy": device_settings(cfg)[2],
        f"{actor}.optim.lr": float(train.learning_rate),
        f"{actor}.optim.betas": [float(b) for b in train.adam_betas],
        f"{actor}.optim.weight_decay": float(train.weight_decay),
        f"{actor}.optim.lr_warmup_steps": int(train.warmup_steps),
        f"{actor}.optim.clip_grad": float(train.max_grad_norm),
        f"{actor}.ppo_mini_batch_size": mini_batch,
        f"{actor}.use_dynamic_bsz": bool(be.dynamic_batch_size),
        f"{actor}.ppo_max_token_len_per_gpu": max_tokens,
        f"{actor}.use_kl_loss": float(algo.beta) > 0,
        f"{actor}.kl_loss_coef": float(algo.beta),
        f"{actor}.clip_ratio_low": float(algo.epsilon),
        f"{actor}.clip_ratio_high": float(algo.epsilon),
        f"{actor}.fsdp_config.param_offload": bool(be.param_offload),
        f"{actor}.fsdp_config.optimizer_offload": bool(be.optimizer_offload),
    }


def _rollout_keys(cfg: DictConfig) -> dict[str, Any]:
    """n rollouts per problem at the training temperature; validation pass@1 over k samples."""
    be, rollout = cfg.backend, "actor_rollout_ref.rollout"
    return {
        f"{rollout}.name": device_settings(cfg)[1],
        f"{rollout}.n": int(cfg.algorithm.num_generations),
        f"{rollout}.temperature": float(cfg.train.temperature),
        f"{rollout}.tensor_model_parallel_size": int(be.tensor_model_parallel_size),
        f"{rollout}.gpu_memory_utilization": float(be.gpu_memory_utilization),
        f"{rollout}.val_kwargs.n": int(cfg.eval.k),
        f"{rollout}.val_kwargs.temperature": float(cfg.eval.temperature),
    }


def _critic_keys(cfg: DictConfig, model: str, max_tokens: int) -> dict[str, Any]:
    """PPO's critic (GAE values): the policy's model, verl's default lr (the paper gives none)."""
    train, be = cfg.train, cfg.backend
    return {
        "critic.model.path": model,
        "critic.model.use_remove_padding": remove_padding(cfg),
        "critic.strategy": device_settings(cfg)[2],
        "critic.optim.lr": float(be.critic_learning_rate),
        "critic.optim.betas": [float(b) for b in train.adam_betas],
        "critic.optim.weight_decay": float(train.weight_decay),
        "critic.optim.clip_grad": float(train.max_grad_norm),
        "critic.ppo_max_token_len_per_gpu": max_tokens,
        "critic.fsdp.param_offload": bool(be.param_offload),
        "critic.fsdp.optimizer_offload": bool(be.optimizer_offload),
    }


def _trainer_keys(cfg: DictConfig, paths: VerlPaths) -> dict[str, Any]:
    train, ev, be = cfg.train, cfg.eval, cfg.backend
    return {
        "trainer.nnodes": int(be.nnodes),
        "trainer.n_gpus_per_node": int(be.n_gpus_per_node),
        "trainer.total_training_steps": int(train.steps),
        "trainer.save_freq": int(train.save_every) if int(train.save_every) > 0 else -1,
        "trainer.max_actor_ckpt_to_keep": train.get("save_total_limit"),
        "trainer.max_critic_ckpt_to_keep": train.get("save_total_limit"),
        "trainer.test_freq": int(ev.every) if int(ev.every) > 0 else -1,
        "trainer.val_before_train": bool(ev.at_start),
        "trainer.default_local_dir": str(paths.checkpoints),
        "trainer.logger": [*list(be.loggers), "file"],
        "trainer.project_name": str(cfg.logger.get("project") or "sec"),
        "trainer.experiment_name": f"{cfg.task.name}-{cfg.curriculum.name}-s{cfg.seed}",
    }


def _cpu_keys(cfg: DictConfig) -> dict[str, Any]:
    """``backend.device=cpu``: verl's own loop on the CPU (docs/verl.md, "verl on a CPU").

    fp32 throughout (no mixed precision; the TRL backend trains CPU runs in fp32 too), no
    torch.compile, no activation recomputation (TRL's CPU runs have none either; memory is bounded
    by ``max_token_len_per_gpu``); the ``hf`` rollout keeps its weights between steps (nothing to
    free) and draws reproducible rollouts (``full_determinism``: the request id is the row, seeded
    by ``rollout.seed`` = the run's seed); one agent-loop and one reward worker (each is a
    process); with one worker, verl's batch balancing across workers has nothing to balance.
    """
    be, rollout, fsdp = cfg.backend, "actor_rollout_ref.rollout", "actor_rollout_ref.actor.fsdp_config"
    gpus = int(be.nnodes) * int(be.n_gpus_per_node)
    return {
        "trainer.device": "cpu",
        "trainer.balance_batch": gpus > 1,
        "actor_rollout_ref.model.enable_gradient_checkpointing": False,
        f"{fsdp}.use_torch_compile": False,
        f"{fsdp}.model_dtype": "fp32",
        f"{rollout}.dtype": "float32",
        f"{rollout}.free_cache_engine": False,
        f"{rollout}.full_determinism": True,
        f"{rollout}.seed": int(cfg.seed),
        f"{rollout}.agent.num_workers": 1,
        f"{rollout}.checkpoint_engine.backend": "naive",
        "reward.num_workers": 1,
    }


def _cpu_free_keys(cfg: DictConfig) -> list[str]:
    """The ``++`` (add) keys of a CPU run: fp32 FSDP2 policy, the ``hf`` engine's settings, and
    Ray's logical resources (every trainer bundle asks {CPU: 3, GPU: 1}: ``num_cpus`` counts
    scheduling slots, not cores; the GPUs are logical, one per trainer worker)."""
    be = cfg.backend
    gpus = int(be.nnodes) * int(be.n_gpus_per_node)
    fsdp = "++actor_rollout_ref.actor.fsdp_config.mixed_precision"
    hf = "++actor_rollout_ref.rollout.engine_kwargs.hf"
    cpu = be.get("cpu") or {}
    out = [f"{fsdp}.{k}=fp32" for k in ("param_dtype", "reduce_dtype", "buffer_dtype")]
    for key, value in (cpu.get("rollout") or {}).items():
        out.append(f"{hf}.{key}={override_value(value)}")
    out.append(f"++ray_kwargs.ray_init.num_cpus={int(cpu.get('ray_num_cpus') or 3 * gpus + 6)}")
    out.append(f"++ray_kwargs.ray_init.num_gpus={gpus}")
    out.append("++ray_kwargs.ray_init.include_dashboard=false")
    return out


def external_modules(cfg: DictConfig) -> str:
    """``VERL_USE_EXTERNAL_MODULES`` of a run: the TRL shim, and the CPU plugin on the CPU."""
    return ",".join([TRL_COMPAT, CPU_PLUGIN] if device_settings(cfg)[0] == "cpu" else [TRL_COMPAT])


def verl_env_vars(cfg: DictConfig) -> dict[str, str]:
    """Environment of verl's processes (the launcher's child and, through
    ``ray_kwargs.ray_init.runtime_env``, every Ray worker): verl's external modules, and on the
    CPU ``VERL_PLATFORM=cpu`` (sec/backends/verl/cpu.py) and torch's thread count."""
    env = {"VERL_USE_EXTERNAL_MODULES": external_modules(cfg)}
    if device_settings(cfg)[0] == "cpu":
        env["VERL_PLATFORM"] = "cpu"
        if cfg.backend.get("num_threads"):
            env["OMP_NUM_THREADS"] = str(int(cfg.backend.num_threads))
    return env


def verl_overrides(cfg: DictConfig, paths: VerlPaths, model: str) -> list[str]:
    """verl config overrides for one run, over ``sec_ppo_trainer.yaml`` (SEC.md §3 values come
    from the run config).

    Args:
        cfg: the composed run config.
        paths: where the run's verl files live.
        model: the model path or hub id (:func:`model_path`).

    Returns:
        ``key=value`` strings, in the order applied; ``backend.overrides`` come last.

    Raises:
        ConfigError: see :func:`check_batch`.
    """
    mini_batch = check_batch(cfg)
    be, ppo = cfg.backend, cfg.algorithm.name == "ppo"
    lengths = int(cfg.train.max_prompt_length) + int(cfg.train.max_completion_length)
    max_tokens = int(be.get("max_token_len_per_gpu") or 2 * lengths)
    o: dict[str, Any] = {
        **_algorithm_keys(cfg),
        **_data_keys(cfg, paths),
        **_actor_keys(cfg, model, mini_batch, max_tokens),
        **_rollout_keys(cfg),
        "critic.enable": ppo,
        **_trainer_keys(cfg, paths),
        **dynamic_sampling_keys(cfg),
    }
    cpu = device_settings(cfg)[0] == "cpu"
    if cpu:
        o.update(_cpu_keys(cfg))
    if not be.dynamic_batch_size:
        o["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"] = int(be.micro_batch_size_per_gpu)
        o["actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu"] = int(be.micro_batch_size_per_gpu)
    if str(cfg.model.get("prompt_format")) == "plain":
        o["actor_rollout_ref.model.custom_chat_template"] = PASSTHROUGH_TEMPLATE
    if ppo:
        o.update(_critic_keys(cfg, model, max_tokens))
        if not be.dynamic_batch_size:
            o["critic.ppo_micro_batch_size_per_gpu"] = int(be.micro_batch_size_per_gpu)
    out = [f"{k}={override_value(v)}" for k, v in o.items()]
    # free-form maps of verl's config ('++': add or replace): the attention kernel transformers
    # loads the models with (verl's default is flash_attention_2), and the environment of the
    # driver actor and every Ray worker on every node: verl's file logger writes where the
    # launcher reads; the TRL shim is imported at `import verl` (sec/backends/verl/trl_compat.py)
    for part in ("actor_rollout_ref", "critic"):
        out.append(f"++{part}.model.override_config.attn_implementation={override_value(str(be.attn_implementation))}")
    env = "++ray_kwargs.ray_init.runtime_env.env_vars"
    out.append(f"{env}.VERL_FILE_LOGGER_PATH={override_value(str(paths.verl_log))}")
    out += [f"{env}.{k}={_quoted(v)}" for k, v in verl_env_vars(cfg).items()]
    if cpu:
        out += _cpu_free_keys(cfg)
    out += [str(x) for x in be.get("overrides") or []]
    return out
