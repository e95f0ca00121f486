"""verl 0.9.1 on a CPU: a platform named ``cpu`` and the registrations that let verl's own
trainer loop (``main_ppo`` -> ``RayPPOTrainer.fit``) run on a machine without an accelerator.

verl has no CPU platform (verl issue #3266). This module adds one through verl's public
extension points only; it is imported at ``import verl`` in the launcher's child, the driver
actor and every Ray worker (``VERL_USE_EXTERNAL_MODULES``, set by
:func:`sec.backends.verl.launch.verl_env` and ``ray_kwargs.ray_init.runtime_env.env_vars`` for
``backend.device=cpu``), and selected by ``VERL_PLATFORM=cpu``:

* :class:`PlatformCPU`, registered by ``PlatformRegistry.register("cpu")``
  (``verl/plugin/platform/platform_manager.py``). Its device module is :data:`device`, a
  ``torch.cpu`` with the calls verl makes on ``torch.cuda`` that ``torch.cpu`` lacks (memory
  statistics from the process's resident set, ``empty_cache`` and friends as no-ops). Process
  groups use gloo; Ray schedules on *logical* GPUs (``ray_init.num_gpus``), one per worker, so
  verl's placement logic is unchanged.
* verl's FSDP engine registered for device ``cpu`` (``EngineRegistry.register``,
  ``verl/workers/engine/base.py``; verl registers it for cuda / npu only). FSDP2
  (``strategy=fsdp2``) runs on CPU tensors with gloo.
* The rollout engine ``hf`` (:mod:`sec.backends.verl.hf_rollout`: transformers' model in a Ray
  actor, weights synced by verl's naive checkpoint engine), registered in ``_ROLLOUT_REGISTRY``
  (``verl/workers/rollout/base.py``) and ``RolloutReplicaRegistry``
  (``verl/workers/rollout/replica.py``).
* The few verl internals no registry reaches are replaced in
  :mod:`sec.backends.verl.replacements` (each names the verl code it replaces; a test fails when
  that code changes).

Nothing here changes the GPU path: without ``VERL_PLATFORM=cpu`` verl detects its own platform,
and the registrations only add names. This module must not import verl's trainer or workers at
module level beyond what the registrations need (it runs inside ``import verl``).
"""

from __future__ import annotations

import logging
import os
import resource
import types
from contextlib import contextmanager
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

#: the platform's name (``VERL_PLATFORM``) and the rollout engine's name (``rollout.name``)
PLATFORM = "cpu"
ROLLOUT = "hf"
#: the rollout classes verl looks up by name
ROLLOUT_ADAPTER = "sec.backends.verl.hf_rollout.HFServerAdapter"


def _rss_bytes() -> int:
    """The process's resident set now (bytes), from /proc (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _peak_rss_bytes() -> int:
    """The process's peak resident set (bytes; ``ru_maxrss`` is KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _mem_get_info(device: Any = None) -> tuple[int, int]:
    """(free, total) host memory in bytes, as ``torch.cuda.mem_get_info`` reports device memory."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _build_device_module() -> types.ModuleType:
    """``torch.cpu`` plus the ``torch.cuda`` calls verl makes through ``get_torch_device()``
    that ``torch.cpu`` lacks. Memory statistics are the process's resident set (so verl's
    ``perf/max_memory_allocated_gb`` is the worker's peak RSS); cache and IPC calls do nothing
    (there is no device cache); the RNG is torch's CPU generator."""
    mod = types.ModuleType("sec_verl_cpu_device", "torch.cpu as verl's device module (sec.backends.verl.cpu)")
    for name in dir(torch.cpu):
        if not name.startswith("_"):
            setattr(mod, name, getattr(torch.cpu, name))
    mod.is_available = lambda: True
    mod.current_device = lambda: "cpu"
    mod.device_count = lambda: 1
    mod.get_device_name = lambda device=None: "cpu"
    mod.empty_cache = _noop
    mod.ipc_collect = _noop
    mod.reset_peak_memory_stats = _noop
    mod.set_per_process_memory_fraction = _noop
    mod.manual_seed = torch.manual_seed
    mod.manual_seed_all = torch.manual_seed
    mod.get_rng_state = lambda device=None: torch.get_rng_state()
    mod.set_rng_state = lambda state, device=None: torch.set_rng_state(state)
    mod.memory_allocated = lambda device=None: _rss_bytes()
    mod.memory_reserved = lambda device=None: _rss_bytes()
    mod.max_memory_allocated = lambda device=None: _peak_rss_bytes()
    mod.max_memory_reserved = lambda device=None: _peak_rss_bytes()
    mod.mem_get_info = _mem_get_info
    return mod


#: verl's ``get_torch_device()`` on this platform
device = _build_device_module()


@PlatformRegistry.register(platform=PLATFORM)
class PlatformCPU(PlatformBase):
    """verl's platform interface (``verl/plugin/platform/platform_base.py``) for the host CPU.

    Ray resource ``GPU``: verl's resource pools ask every worker for one accelerator, so a CPU
    run declares logical GPUs (``ray_kwargs.ray_init.num_gpus``) and each trainer worker holds
    one; no CUDA call is made. Collectives: gloo.
    """

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return device

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # chosen only by name (VERL_PLATFORM=cpu): never auto-detected over an accelerator
        return False

    def current_device(self) -> str:  # type: ignore[override]
        # "cpu", not an index: verl moves tensors with `.to(get_device_id())`, and `.to(0)` means cuda:0
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets it for actors holding logical GPUs; torch's CPU build ignores it
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _load_replica() -> type:
    from sec.backends.verl.hf_rollout import HFReplica

    return HFReplica


def register_rollout() -> None:
    """The ``hf`` rollout engine in verl's two rollout registries (adapter inside the trainer
    worker, replica that launches the server actor)."""
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT, "async")] = ROLLOUT_ADAPTER
    RolloutReplicaRegistry.register(ROLLOUT, _load_replica)


def register_engine() -> None:
    """verl's FSDP engines (actor / critic) for device ``cpu`` (verl registers them for cuda /
    npu: ``verl/workers/engine/fsdp/transformer_impl.py``)."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        registered = EngineRegistry._engines.get(model_type, {})
        if all(PLATFORM in registered.get(b, {}) for b in ("fsdp", "fsdp2")):
            continue
        EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device=PLATFORM)(cls)


class _OncePerProcess(logging.Filter):
    """Lets a message through the first time only. verl's agent loop builds a tokenizer wrapper
    per rollout and, for a model type it has no builder for (Llama: the testbed's models,
    SmolLM2), warns each time (``verl/utils/tokenizer/continuous_token_wiring.py``), i.e. once
    per rollout and step in the log."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def quiet_repeated_warnings() -> None:
    """Log verl's per-rollout tokenizer-builder warning once per process."""
    logging.getLogger("verl.utils.tokenizer.continuous_token_wiring").addFilter(_OncePerProcess())


def selected() -> bool:
    """Whether this process runs verl on the CPU platform (``VERL_PLATFORM=cpu``)."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM


def install() -> bool:
    """Register the rollout engine always (a name only), and, when the CPU platform is selected,
    the engine registration and the replacements. Returns whether the CPU platform is selected."""
    register_rollout()
    quiet_repeated_warnings()
    if not selected():
        return False
    from sec.backends.verl import replacements

    replacements.install()
    register_engine()
    return True


install()
