"""CLIP loading (weights files, QuickGELU mapping, offline failure) and text encoding."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import torch

from fixtures_clip import TINY_CLIP_CONFIG
from psftr_core.features import clip_weights
from psftr_core.features.clip import encode_texts, load_clip
from psftr_core.errors import InputError

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_local_weights_file_is_identified_by_sha256(tiny_clip, tiny_clip_files):
    sha = hashlib.sha256(tiny_clip_files.weights.read_bytes()).hexdigest()
    assert tiny_clip.weights_id == f"sha256:{sha}"
    assert tiny_clip.architecture == "psftr-tiny-clip"
    assert tiny_clip.model_name == "psftr-tiny-clip"  # the config's name, not the ViT-B-16 default
    assert tiny_clip.embed_dim == 64 and tiny_clip.image_size == (64, 64)
    state = torch.load(tiny_clip_files.weights, weights_only=True)
    assert torch.equal(tiny_clip.model.state_dict()["visual.proj"], state["visual.proj"])
    assert not tiny_clip.model.training


def test_openai_offline_without_cache_fails_fast(monkeypatch, tmp_path):
    __import__("open_clip")  # imported first: import time is not what we measure

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        load_clip("ViT-B-16", "openai")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "ViT-B-16-quickgelu" in message and "--clip-pretrained PATH" in message and "\n" not in message


def test_unreachable_hub_is_one_line_without_offline_flag(monkeypatch, tmp_path):
    """The hub client's own error (after its timeouts, retries, proxies) becomes one InputError line."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def unreachable(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub.\nMore.")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(clip_weights, "hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(InputError, match="cannot be reached") as info:
        load_clip("ViT-B-16", "openai")
    assert "--clip-pretrained PATH" in str(info.value) and "\n" not in str(info.value)
    assert calls == [("timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors")]  # no retry loop of ours


def _register(tmp_path, name: str, **extra) -> str:
    import open_clip

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**TINY_CLIP_CONFIG, **extra}), encoding="utf-8")
    open_clip.add_model_config(path)
    return name


def _fake_openai_tag(monkeypatch, weights_path):
    """Pretend the tiny model has an 'openai' tag (QuickGELU) whose weights are cached."""
    import open_clip

    real = open_clip.get_pretrained_cfg

    def get_pretrained_cfg(model, tag):
        if model.startswith("qg-tiny") and tag == "openai":
            return {"url": "https://example.invalid/w.pt", "quick_gelu": True, "mean": (0.5, 0.5, 0.5)}
        return real(model, tag)

    monkeypatch.setattr(open_clip, "get_pretrained_cfg", get_pretrained_cfg)
    monkeypatch.setattr(clip_weights, "cached_tag_file", lambda cfg: str(weights_path))


def test_openai_tag_switches_to_quickgelu(monkeypatch, tmp_path, tiny_clip_files):
    from open_clip.transformer import QuickGELU

    _register(tmp_path, "qg-tiny-a")
    _fake_openai_tag(monkeypatch, tiny_clip_files.weights)
    handle = load_clip("qg-tiny-a", "openai")
    assert handle.weights_id == "tag:openai"
    assert isinstance(handle.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert tuple(handle.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)  # tag's preprocessing
    plain = load_clip("qg-tiny-a", str(tiny_clip_files.weights))
    assert not isinstance(plain.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_local_openai_state_dict_gets_quickgelu(monkeypatch, tmp_path, tiny_clip_files):
    import shutil

    from open_clip.transformer import QuickGELU

    _register(tmp_path, "qg-tiny-c")
    _fake_openai_tag(monkeypatch, tiny_clip_files.weights)
    converted = tmp_path / "models--timm--vit.openai" / "open_clip_pytorch_model.bin"
    converted.parent.mkdir()
    shutil.copyfile(tiny_clip_files.weights, converted)
    handle = load_clip("qg-tiny-c", str(converted))
    assert handle.weights_id.startswith("sha256:")
    assert isinstance(handle.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_openai_tag_prefers_the_quickgelu_config(monkeypatch, tmp_path, tiny_clip_files):
    _register(tmp_path, "qg-tiny-b")
    _register(tmp_path, "qg-tiny-b-quickgelu", quick_gelu=True)
    _fake_openai_tag(monkeypatch, tiny_clip_files.weights)
    handle = load_clip("qg-tiny-b", "openai")
    assert handle.architecture == "qg-tiny-b-quickgelu"


def test_bad_weights_and_configs_are_input_errors(tmp_path, tiny_clip_files):
    with pytest.raises(InputError, match="not found"):
        load_clip("ViT-B-16", str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="unknown pretrained tag 'nope'"):
        load_clip("ViT-B-16", "nope")
    with pytest.raises(InputError, match="unknown CLIP model"):
        load_clip("No-Such-Model", "openai")
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_clip(config_file=garbled, pretrained=None)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text('{"embed_dim": 64}', encoding="utf-8")
    with pytest.raises(InputError, match="vision_cfg"):
        load_clip(config_file=incomplete, pretrained=None)
    # weights of another architecture
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(InputError, match="could not load CLIP"):
        load_clip(config_file=tiny_clip_files.config, pretrained=str(wrong))


def test_encode_texts_matches_direct_forward_and_uses_cache(tiny_clip, tmp_path, monkeypatch):
    names = ["long jump", "diving", "pole vault"]
    cache = tmp_path / "cache"
    first = encode_texts(tiny_clip, names, cache_dir=cache)
    tokens = tiny_clip.tokenizer([f"a video of a person doing {n}" for n in names])
    with torch.inference_mode():
        direct = tiny_clip.model.encode_text(tokens).numpy()
    assert first.dtype == np.float32 and first.shape == (3, 64)
    np.testing.assert_allclose(first, direct, atol=1e-5)
    assert len(list((cache / "text").glob("*.npy"))) == 3

    calls = []
    real = tiny_clip.model.encode_text
    monkeypatch.setattr(tiny_clip.model, "encode_text", lambda t: calls.append(len(t)) or real(t))
    again = encode_texts(tiny_clip, list(reversed(names)), cache_dir=cache)
    assert calls == []  # all three from the cache
    np.testing.assert_array_equal(again, first[::-1])
    other = encode_texts(tiny_clip, names[:2] + ["high jump"], prompt="a photo of {}", cache_dir=cache)
    assert calls == [3]  # another prompt is another key
    assert not np.allclose(other[0], first[0])


def test_encode_texts_checks_prompt_and_skips_cache_for_random_weights(tmp_path, tiny_clip, tiny_clip_files):
    with pytest.raises(InputError, match="must contain"):
        encode_texts(tiny_clip, ["a"], prompt="no placeholder")
    random_handle = load_clip(config_file=tiny_clip_files.config, pretrained=None)
    assert random_handle.weights_id == "random"
    encode_texts(random_handle, ["a", "b"], cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_safetensors_weights_load_like_the_state_dict(tmp_path, tiny_clip, tiny_clip_files):
    from safetensors.torch import save_file

    state = torch.load(tiny_clip_files.weights, weights_only=True)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    handle = load_clip(config_file=tiny_clip_files.config, pretrained=str(path))
    assert handle.weights_id == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(handle.model.encode_image(images), tiny_clip.model.encode_image(images))
