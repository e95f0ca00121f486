"""Model sources: where a run's weights come from, one module per ``model.source``, registered by
name (:func:`sec.models.core.register_source`) and found by :func:`resolve_model`, which imports a
source's module on first use (:data:`sec.models.core.SOURCE_MODULES`):

- ``auto`` (:mod:`sec.models.auto`, the default of every ``model/`` config): ``local_path`` when
  set, else the first of the hub cache, the hub and the package;
- ``hub`` / ``cache`` (:mod:`sec.models.hub`): ``hub_id`` from the Hugging Face cache or the hub /
  from the cache only;
- ``package`` (:mod:`sec.models.package`): a GGUF that a Python package ships, dequantised once;
- ``local`` (:mod:`sec.models.local`): a model directory (``local_path``);
- ``random_init`` (:mod:`sec.models.random_init`): a tiny randomly initialised model (tests);
- ``pretrain`` (:mod:`sec.models.testbed`, trained by :mod:`sec.models.testbed_train`): the
  testbed's model, pre-trained by this project;
- ``sft`` (:mod:`sec.models.warmup`): a pretrained model after a format warm-up SFT.

What every source shares is :mod:`sec.models.core`: the registry, the model cache
(``<cache_dir>/models``: one builder per model, atomic publishing), the ``model/`` configs and the
``build`` command. Sources import the core (and other sources' public functions), never this
package, so that the package can name the core's API here without a circle.

The chosen source is logged and returned, so every run records where its weights came from.
"""

from __future__ import annotations

from sec.models.core import (
    SOURCES,
    ModelSourceError,
    ResolvedModel,
    load_model_and_tokenizer,
    planned_path,
    register_source,
    resolve_model,
)

__all__ = [
    "SOURCES",
    "ModelSourceError",
    "ResolvedModel",
    "load_model_and_tokenizer",
    "planned_path",
    "register_source",
    "resolve_model",
]
