"""Lets verl 0.9.1 build its models next to TRL 1.16 (the TRL backend's pin).

verl imports this module at ``import verl`` in the launcher's child, the driver actor and every
Ray worker on every node: verl's public extension point ``VERL_USE_EXTERNAL_MODULES``
(``verl/__init__.py`` -> ``verl.utils.import_utils.import_external_libs``), set by
:func:`sec.backends.verl.launch.verl_env` and, for the workers, by
``ray_kwargs.ray_init.runtime_env.env_vars`` (sec/backends/verl/config.py).

Why: verl builds every FSDP actor and critic through
``verl/models/transformers/monkey_patch.py: apply_monkey_patch``, which, whenever ``trl`` is
importable, imports ``AutoModelForCausalLMWithValueHead`` from ``trl.experimental.ppo`` (else
``trl``) to patch its ``state_dict``. TRL removed that class in 1.13 (1.12.0 is the last release
with ``trl/experimental/ppo/``), so with TRL 1.16 the model build raises ``ImportError``. The
project never uses that class: verl's critic loads ``AutoModelForTokenClassification`` first
(``verl/utils/model.py: load_valuehead_model``) and falls back to TRL's value-head model only for
an architecture without a token-classification head.

What it does: when the installed TRL lacks the class (by its version, without importing TRL),
it registers a module ``trl.experimental.ppo`` whose :class:`AutoModelForCausalLMWithValueHead`
accepts verl's ``state_dict`` patch and raises a clear error if verl ever tries to build a model
with it. With TRL <= 1.12, or without TRL, it does nothing. No verl code is changed. This module
must not import verl (it runs inside ``import verl``). docs/verl.md lists the alternatives tried.
"""

from __future__ import annotations

import sys
import types
from importlib import metadata
from typing import Any, NoReturn

#: TRL releases from this one on have no ``AutoModelForCausalLMWithValueHead``
FIRST_TRL_WITHOUT_VALUE_HEAD = (1, 13)
MODULE = "trl.experimental.ppo"


class AutoModelForCausalLMWithValueHead:
    """Stands in for TRL's removed value-head model in verl's imports (see module doc)."""

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Raises:
        ImportError: always: verl fell back to TRL's value-head model because loading the critic
            as ``AutoModelForTokenClassification`` failed (that error comes first in the log).
        """
        raise ImportError(
            "verl's critic fell back to trl's AutoModelForCausalLMWithValueHead, which TRL >= 1.13 no longer has: "
            "loading it as AutoModelForTokenClassification failed first (see the error above; algorithm=ppo needs "
            "flash-attn, docs/verl.md)"
        )


def trl_version() -> tuple[int, ...] | None:
    """The installed TRL's (major, minor), or None without TRL."""
    try:
        version = metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for p in version.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def needed() -> bool:
    """Whether the installed TRL lacks the class verl imports."""
    version = trl_version()
    return version is not None and version >= FIRST_TRL_WITHOUT_VALUE_HEAD


def install() -> bool:
    """Register the stand-in module when needed; returns whether it is registered."""
    if MODULE in sys.modules:
        return (
            getattr(sys.modules[MODULE], "AutoModelForCausalLMWithValueHead", None) is AutoModelForCausalLMWithValueHead
        )
    if not needed():
        return False
    module = types.ModuleType(MODULE, "sec.backends.verl.trl_compat: verl's import of TRL's removed value-head model")
    module.AutoModelForCausalLMWithValueHead = AutoModelForCausalLMWithValueHead
    sys.modules[MODULE] = module
    return True


install()
