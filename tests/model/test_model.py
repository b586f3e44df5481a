"""PSFTR model: masks, vocabulary as input, gradients, ablation switches, scoring."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from psftr_core.config import ModelConfig, preset
from psftr_core.errors import InputError
from psftr_core.infer.scoring import PostProcess, class_probabilities
from psftr_core.model import PAD_SALIENCY_LOGIT, PSFTR

D = 32


# Tiny tensors: one intra-op thread is much faster than two on a busy shared machine.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_config(**changes) -> ModelConfig:
    base = ModelConfig(
        feature_dim=D,
        text_dim=D,
        hidden_dim=32,
        num_heads=4,
        num_groups=8,
        dim_feedforward=64,
        enc_layers=2,
        dec_layers=3,
        num_queries=8,
        dropout=0.0,
    )
    return dataclasses.replace(base, **changes)


def post(model: PSFTR) -> PostProcess:
    """The post-processing of ``model`` (its ROI-CLIP settings)."""
    return PostProcess.from_config(model.cfg)


def tiny_model(seed: int = 0, **changes) -> PSFTR:
    torch.manual_seed(seed)
    model = PSFTR(tiny_config(**changes))
    # Move the zero-initialised layers (offsets, segment heads...) off their init so
    # that every path carries signal in these tests.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def inputs(B=2, T=12, K=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, D, generator=g), torch.randn(K, D, generator=g)


def flat_outputs(out: dict, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a forward dict (saliency restricted to ``valid`` positions)."""
    flat = {}
    for name, value in out.items():
        if name == "aux_outputs":
            for i, layer in enumerate(value):
                for key, tensor in layer.items():
                    flat[f"aux{i}.{key}"] = tensor
        elif name in ("saliency_logits", "clip_features", "snippet_logits") and valid is not None:
            flat[name] = value[valid]
        else:
            flat[name] = value
    return flat


def assert_same(a: dict, b: dict, atol: float = 1e-5) -> None:
    """Equal up to float rounding; class logits are τ = 100 times a cosine, so 100·atol."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].shape == b[key].shape, key
        diff = (a[key] - b[key]).abs().max().item()
        tol = 100 * atol if key.endswith("pred_logits") else atol
        assert diff <= tol, f"{key}: max abs diff {diff}"


def test_output_dict_shapes_and_ranges():
    model = tiny_model()
    features, text = inputs(B=2, T=12, K=5)
    out = model(features, None, text)
    assert set(out) == {"pred_logits", "pred_segments", "pred_actionness", "saliency_logits", "aux_outputs",
                        "clip_features", "snippet_logits"}
    assert out["pred_logits"].shape == (2, 8, 5)
    assert out["pred_segments"].shape == (2, 8, 2)
    assert out["pred_actionness"].shape == (2, 8, 1)
    assert out["saliency_logits"].shape == (2, 12)
    assert len(out["aux_outputs"]) == 2
    for layer in out["aux_outputs"]:
        assert set(layer) == {"pred_logits", "pred_segments", "pred_actionness"}
        assert layer["pred_logits"].shape == (2, 8, 5)
    segments = out["pred_segments"]
    assert bool(((segments > 0) & (segments < 1)).all())
    # Logits are τ·cos: bounded by the logit scale.
    assert out["pred_logits"].abs().max().item() <= 100.0 + 1e-4


def test_initial_segments_follow_the_init():
    # At init (no perturbation), layer 0 predicts width σ(-2) for every query.
    torch.manual_seed(0)
    model = PSFTR(tiny_config()).eval()
    features, text = inputs()
    out = model(features, None, text)
    first = out["aux_outputs"][0]["pred_segments"]
    assert torch.allclose(first[..., 1], torch.full_like(first[..., 1], torch.sigmoid(torch.tensor(-2.0)).item()))
    # And the actionness bias encodes a prior probability of 0.01.
    assert torch.sigmoid(model.actionness_head.bias).item() == pytest.approx(0.01)


def test_padded_values_do_not_change_valid_outputs():
    model = tiny_model()
    features, text = inputs(B=2, T=12)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 8:] = True
    changed = features.clone()
    changed[1, 8:] = torch.randn(4, D) * 1e3
    other = features.clone()
    other[1, 8:] = float("nan")
    valid = ~mask
    ref = flat_outputs(model(features, mask, text), valid)
    assert_same(ref, flat_outputs(model(changed, mask, text), valid))
    assert_same(ref, flat_outputs(model(other, mask, text), valid))
    memory, _ = model.encode(features, mask, text)
    memory2, _ = model.encode(changed, mask, text)
    assert torch.allclose(memory[valid], memory2[valid], atol=1e-5)
    assert bool((model(features, mask, text)["saliency_logits"][mask] == PAD_SALIENCY_LOGIT).all())


def test_padding_length_does_not_change_outputs():
    # A video alone (T = 9) and the same video padded to 16 inside a batch.
    model = tiny_model()
    features, text = inputs(B=2, T=16)
    alone = features[:1, :9]
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, 9:] = True
    out_alone = model(alone, None, text)
    out_batch = model(features, mask, text)
    single = {k: v[:1] for k, v in flat_outputs(out_batch).items()}
    for key in ("saliency_logits", "clip_features", "snippet_logits"):
        single[key] = single[key][:, :9]
    assert_same(flat_outputs(out_alone), single)
    memory_alone, text_alone = model.encode(alone, None, text)
    memory_batch, text_batch = model.encode(features, mask, text)
    assert torch.allclose(memory_alone[0], memory_batch[0, :9], atol=1e-5)
    assert torch.allclose(text_alone[0], text_batch[0], atol=1e-5)
    roi_alone = post(model).class_scores(out_alone, alone, None, text)
    roi_batch = post(model).class_scores(out_batch, features, mask, text)
    assert torch.allclose(roi_alone[0], roi_batch[0], atol=1e-5)


def test_class_order_permutes_logits():
    model = tiny_model()
    features, text = inputs(K=7)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    out = model(features, None, text)
    out_perm = model(features, None, text[perm])
    for a, b in zip([out] + out["aux_outputs"], [out_perm] + out_perm["aux_outputs"]):
        assert torch.allclose(b["pred_logits"], a["pred_logits"][..., perm], atol=1e-4)
        assert torch.allclose(b["pred_segments"], a["pred_segments"], atol=1e-5)
        assert torch.allclose(b["pred_actionness"], a["pred_actionness"], atol=1e-5)
    assert torch.allclose(
        post(model).class_scores(out_perm, features, None, text[perm]),
        post(model).class_scores(out, features, None, text)[..., perm],
        atol=1e-5,
    )


def test_shared_text_equals_per_video_text():
    model = tiny_model()
    features, text = inputs(B=2, K=4)
    shared = model(features, None, text)
    per_video = model(features, None, text[None].expand(2, -1, -1).clone())
    assert_same(flat_outputs(shared), flat_outputs(per_video))


def test_vocabulary_sizes_1_and_1000():
    model = tiny_model()
    features, _ = inputs(B=1, T=10)
    one = model(features, None, torch.randn(1, D))
    assert one["pred_logits"].shape == (1, 8, 1)
    # With one class the softmax is 1, so the score is the actionness probability.
    assert torch.allclose(class_probabilities(one), one["pred_actionness"].sigmoid(), atol=1e-6)
    many = model(features, None, torch.randn(1000, D))
    assert many["pred_logits"].shape == (1, 8, 1000)
    assert all(layer["pred_logits"].shape == (1, 8, 1000) for layer in many["aux_outputs"])
    assert torch.isfinite(many["pred_logits"]).all()
    scores = post(model).class_scores(many, features, None, torch.randn(1000, D))
    assert scores.shape == (1, 8, 1000)


def _loss_touching_everything(out: dict, mask: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    total = torch.zeros(())
    for layer in [out] + out["aux_outputs"]:
        for key in ("pred_logits", "pred_segments", "pred_actionness"):
            if key in layer:
                total = total + (layer[key] * torch.randn(layer[key].shape, generator=g)).sum()
    for key in ("saliency_logits", "snippet_logits"):
        if key in out:
            value = out[key]
            total = total + (value * torch.randn(value.shape, generator=g))[~mask].sum()
    return total


def _check_gradients(model: PSFTR, K: int = 5) -> None:
    model.train()
    features, text = inputs(B=2, T=12, K=K)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 9:] = True
    out = model(features, mask, text)
    _loss_touching_everything(out, mask).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient: {bad}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum().item() == 0.0]
    assert not zero, f"zero gradient: {zero}"


def test_every_parameter_gets_a_finite_nonzero_gradient():
    _check_gradients(tiny_model())


@pytest.mark.parametrize("variant", ["concat_mlp", "residual"])
def test_other_spde_variants_train(variant):
    _check_gradients(tiny_model(spde_variant=variant, dec_layers=2))


ABLATIONS = [
    ({"use_text_to_vision": False}, ["text_to_vision", "norm_t2v", "ffn_t2v"]),
    ({"use_vision_to_text": False}, ["vision_to_text", "norm_v2t", "ffn_v2t"]),
    # Without text-to-query nothing reads the last encoder layer's text output.
    (
        {"use_text_to_query": False},
        ["text_cross_attn", "decoder.layers.0.norm_text", "ffn_text", "encoder.layers.1.vision_to_text"],
    ),
    # Vision-to-text alone has no reader: the whole text branch is absent.
    ({"use_text_to_vision": False, "use_text_to_query": False}, ["text_proj", "text_self_attn", "vision_to_text"]),
    (
        {"use_text_to_vision": False, "use_vision_to_text": False, "use_text_to_query": False},
        ["text_proj", "text_self_attn", "text_to_vision", "vision_to_text", "text_cross_attn"],
    ),
    ({"spde_variant": "none"}, ["spde."]),
    ({"use_actionness": False}, ["actionness_head"]),
    ({"use_saliency": False}, ["saliency_head"]),
    ({"use_visual_text_map": False}, ["visual_text_map"]),  # the paper's architecture
]


@pytest.mark.parametrize("changes, absent", ABLATIONS)
def test_ablation_switch_removes_its_path(changes, absent):
    every_path = {"use_text_to_vision": True}  # off by default (docs/training.md); on here so each switch has a path
    full = {n for n, _ in PSFTR(tiny_config(**every_path)).named_parameters()}
    for prefix in absent:
        assert any(prefix in n for n in full), f"{prefix} should exist in the full model"
    model = tiny_model(**{**every_path, **changes})
    names = [n for n, _ in model.named_parameters()]
    for prefix in absent:
        assert not any(prefix in n for n in names), f"{prefix} still present with {changes}"
    features, text = inputs()
    out = model(features, None, text)
    assert out["pred_logits"].shape == (2, 8, 5)
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["pred_segments"]).all()
    assert ("pred_actionness" in out) == model.cfg.use_actionness
    assert ("saliency_logits" in out) == model.cfg.use_saliency
    _check_gradients(model)


def test_scores_without_actionness_are_softmax():
    model = tiny_model(use_actionness=False, use_roi_logits=False)
    features, text = inputs()
    out = model(features, None, text)
    assert torch.allclose(class_probabilities(out), out["pred_logits"].softmax(-1))
    assert torch.allclose(post(model).class_scores(out, features, None, text), out["pred_logits"].softmax(-1))


def test_scores_formula():
    model = tiny_model()
    features, text = inputs()
    out = model(features, None, text)
    want = out["pred_actionness"].sigmoid() * out["pred_logits"].softmax(-1)
    assert torch.allclose(class_probabilities(out), want)


@pytest.mark.parametrize("heads", [1, 8])
def test_number_of_heads(heads):
    model = tiny_model(num_heads=heads)
    assert model.encoder.layers[0].deform_attn.sampling_offsets.out_features == heads * 4
    features, text = inputs()
    assert model(features, None, text)["pred_logits"].shape == (2, 8, 5)


def test_roi_logits_known_answer():
    # Snippets 0-9 point along e0, 10-19 along e1; the text is (e0, e1).
    model = tiny_model()
    e = torch.eye(D)
    features = torch.cat((e[0].expand(10, D), e[1].expand(10, D)))[None] * 3.0
    text = e[:2]
    # [1, 9] and [11, 19] in snippet units sample only inside one half (index 0.5..8.5 and
    # 10.5..18.5); [9, 11] straddles the boundary symmetrically.
    segments = torch.tensor([[[0.25, 0.4], [0.75, 0.4], [0.5, 0.1]]])
    logits = post(model).roi_logits(features, None, segments, text)
    assert torch.allclose(logits[0, 0], torch.tensor([100.0, 0.0]), atol=1e-4)
    assert torch.allclose(logits[0, 1], torch.tensor([0.0, 100.0]), atol=1e-4)
    # The middle segment [9, 11] straddles both halves symmetrically: equal logits 100/√2.
    assert torch.allclose(logits[0, 2], torch.full((2,), 100.0 / 2**0.5), atol=1e-3)
    # Padding after the valid part (a 20-snippet video padded to 26) changes nothing.
    padded = torch.cat((features, torch.full((1, 6, D), 9.0)), dim=1)
    mask = torch.tensor([[False] * 20 + [True] * 6])
    assert torch.allclose(post(model).roi_logits(padded, mask, segments, text), logits, atol=1e-4)


def test_inference_mixes_learned_and_roi_logits():
    model = tiny_model(roi_logit_weight=0.25)
    features, text = inputs()
    out = model(features, None, text)
    # The ROI logits pool the features mapped into the text space (x + Linear(x)), not the raw ones.
    assert torch.allclose(out["clip_features"], features + model.visual_text_map(features), atol=1e-5)
    roi = post(model).roi_logits(out["clip_features"], None, out["pred_segments"], text)
    assert not torch.allclose(roi, post(model).roi_logits(features, None, out["pred_segments"], text), atol=1e-2)
    mixed = post(model).class_logits(out, features, None, text)
    assert torch.allclose(mixed, 0.75 * out["pred_logits"] + 0.25 * roi, atol=1e-5)
    assert torch.allclose(post(model).class_scores(out, features, None, text), class_probabilities(out, mixed))
    with torch.no_grad():
        predicted = {"scores": post(model).class_scores(model(features, None, text), features, None, text)}
    assert torch.allclose(predicted["scores"], post(model).class_scores(out, features, None, text), atol=1e-6)
    off = tiny_model(use_roi_logits=False)
    out_off = off(features, None, text)
    assert torch.equal(post(off).class_scores(out_off, features, None, text), class_probabilities(out_off))


def test_bad_inputs_raise_input_error():
    model = tiny_model()
    features, text = inputs()
    with pytest.raises(InputError, match="video features"):
        model(torch.randn(2, 12, D + 1), None, text)
    with pytest.raises(InputError, match="text embeddings"):
        model(features, None, torch.randn(5, D + 1))
    with pytest.raises(InputError, match="text embeddings"):
        model(features, None, torch.randn(3, 5, D))
    with pytest.raises(InputError, match="text embeddings"):
        model(features, None, torch.randn(0, D))
    holes = torch.zeros(2, 12, dtype=torch.bool)
    holes[0, 3] = True
    with pytest.raises(InputError, match="padding must come after"):
        model(features, holes, text)
    with pytest.raises(InputError, match="at least one valid"):
        model(features, torch.ones(2, 12, dtype=torch.bool), text)


def test_presets_build():
    for name, queries, layers in (("thumos14", 40, 5), ("anet", 30, 2)):
        cfg = preset(name).model
        model = PSFTR(cfg)
        assert model.decoder.query_embed.weight.shape == (queries, 2 * 512)
        assert len(model.decoder.layers) == layers
        assert len(model.encoder.layers) == 2


def test_feature_width_can_differ_from_hidden_width():
    # e.g. ViT-L/14 features (768) into a 512-wide transformer; here 48 -> 32.
    torch.manual_seed(0)
    model = PSFTR(tiny_config(feature_dim=48, text_dim=48)).eval()
    features, text = torch.randn(2, 10, 48), torch.randn(3, 48)
    out = model(features, None, text)
    assert out["pred_logits"].shape == (2, 8, 3)
    assert model.input_proj.weight.shape == (32, 48) and model.class_proj.weight.shape == (48, 32)
    assert post(model).class_scores(out, features, None, text).shape == (2, 8, 3)


def test_visual_text_map_starts_at_the_identity_and_old_configs_load_without_it():
    from psftr_core.config import config_from_dict, config_to_dict

    torch.manual_seed(0)
    model = PSFTR(tiny_config()).eval()
    features, text = inputs()
    assert torch.equal(model.to_text_space(features), features)  # zero residual at init
    out = model(features, None, text)
    cos = torch.nn.functional.cosine_similarity(features[:, :, None, :], text[None, None, :, :], dim=-1)
    assert torch.allclose(out["snippet_logits"], 100.0 * cos, atol=1e-4)
    # A config saved before the map existed means the paper's model: loaded with the map off.
    saved = config_to_dict(config_from_dict({"model": dict(vars(tiny_config()))}))
    del saved["model"]["use_visual_text_map"]
    assert config_from_dict(saved).model.use_visual_text_map is False
    assert config_from_dict({"train": {}}).model.use_visual_text_map is True  # no model section: the default
