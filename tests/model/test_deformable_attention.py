"""1-D deformable attention, ROIAlign-1D, masked GroupNorm and positional encoding
against independent hand-written computations."""

from __future__ import annotations

import math

import pytest
import torch

from psftr_core.model import (
    DeformableAttention1D,
    MaskedGroupNorm,
    deformable_attention_1d,
    roi_align_1d,
    sine_position_encoding,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is ~50x faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _interpolate(seq: list[list[float]], s: float) -> list[float]:
    """Linear interpolation of seq (T rows) at index coordinate s; zeros outside [0, T)."""
    i0 = math.floor(s)
    frac = s - i0
    out = [0.0] * len(seq[0])
    for i, w in ((i0, 1.0 - frac), (i0 + 1, frac)):
        if 0 <= i < len(seq):
            out = [o + w * v for o, v in zip(out, seq[i])]
    return out


def naive_deformable_attention(module, query, reference, value_input, mask):
    """Loop over batch, query, head and point: an independent reference implementation."""
    B, Nq, d = query.shape
    T = value_input.shape[1]
    M, P = module.num_heads, module.num_points
    C = d // M
    with torch.no_grad():
        value = module.value_proj(value_input).double().tolist()
        offsets = module.sampling_offsets(query).double().view(B, Nq, M, P).tolist()
        logits = module.attention_weights(query).double().view(B, Nq, M, P).tolist()
        ref = reference.double().tolist()
        out = torch.zeros(B, Nq, d, dtype=torch.float64)
        for b in range(B):
            for t in range(T):
                if mask is not None and mask[b, t]:
                    value[b][t] = [0.0] * d
            for q in range(Nq):
                for m in range(M):
                    head_seq = [row[m * C : (m + 1) * C] for row in value[b]]
                    exps = [math.exp(a) for a in logits[b][q][m]]
                    acc = [0.0] * C
                    for p in range(P):
                        delta = offsets[b][q][m][p]
                        if len(ref[b][q]) == 1:
                            loc = ref[b][q][0] + delta / T
                        else:
                            loc = ref[b][q][0] + delta / P * ref[b][q][1] / 2
                        sample = _interpolate(head_seq, loc * T - 0.5)
                        weight = exps[p] / sum(exps)
                        acc = [a + weight * s for a, s in zip(acc, sample)]
                    out[b, q, m * C : (m + 1) * C] = torch.tensor(acc, dtype=torch.float64)
        return module.output_proj(out.float())


def _random_module(seed: int, d: int = 16, heads: int = 4, points: int = 3) -> DeformableAttention1D:
    torch.manual_seed(seed)
    module = DeformableAttention1D(d, heads, points)
    with torch.no_grad():  # non-trivial offsets (some out of range) and weights
        module.sampling_offsets.weight.normal_(0.0, 1.0)
        module.sampling_offsets.bias.normal_(0.0, 3.0)
        module.attention_weights.weight.normal_(0.0, 0.5)
        module.attention_weights.bias.normal_(0.0, 0.5)
        module.value_proj.bias.normal_(0.0, 0.5)
    return module


@pytest.mark.parametrize("reference_kind", ["centre", "segment"])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_naive_loop(reference_kind, padded):
    module = _random_module(seed=1)
    B, Nq, T, d = 2, 5, 11, 16
    query = torch.randn(B, Nq, d)
    value_input = torch.randn(B, T, d)
    if reference_kind == "centre":
        reference = torch.rand(B, Nq, 1)
    else:
        reference = torch.stack((torch.rand(B, Nq), torch.rand(B, Nq) * 0.8 + 0.05), dim=-1)
    mask = None
    if padded:
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[1, 7:] = True
    got = module(query, reference, value_input, mask)
    want = naive_deformable_attention(module, query, reference, value_input, mask)
    assert got.shape == (B, Nq, d)
    assert (got - want).abs().max().item() <= 1e-5


def test_padded_values_are_never_read():
    module = _random_module(seed=2)
    query, value_input = torch.randn(2, 4, 16), torch.randn(2, 9, 16)
    reference = torch.rand(2, 4, 1)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 5:] = True
    changed = value_input.clone()
    changed[0, 5:] = 1e6
    assert torch.allclose(module(query, reference, value_input, mask), module(query, reference, changed, mask))


def test_function_known_values():
    # One head, one channel, values 0, 1, 2, 3 at snippet centres 0.125, 0.375, 0.625, 0.875.
    value = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 4, 1, 1)
    locations = torch.tensor([0.375, 0.5, 0.0, 1.0, -0.5, 0.625]).view(1, 6, 1, 1)
    weights = torch.ones(1, 6, 1, 1)
    out = deformable_attention_1d(value, locations, weights).flatten()
    # centre of snippet 1 -> 1; midway 1|2 -> 1.5; left edge -> half of snippet 0 and zero;
    # right edge -> half of 3; far outside -> 0; centre of snippet 2 -> 2.
    assert torch.allclose(out, torch.tensor([1.0, 1.5, 0.0, 1.5, 0.0, 2.0]), atol=1e-6)
    # Two points with weights 0.25 / 0.75 mix the samples linearly.
    two = deformable_attention_1d(value, torch.tensor([[[[0.125, 0.875]]]]), torch.tensor([[[[0.25, 0.75]]]]))
    assert two.item() == pytest.approx(0.25 * 0 + 0.75 * 3, abs=1e-6)


def test_initial_offsets_spread_around_reference():
    module = DeformableAttention1D(16, 4, 3)
    bias = module.sampling_offsets.bias.view(4, 3)
    want = torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0], [1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]])
    assert torch.equal(bias.detach(), want)
    assert torch.count_nonzero(module.sampling_offsets.weight) == 0
    # With the init, a centre reference at snippet 4 of T = 10 samples snippets 5, 6, 7 (head 0).
    query = torch.randn(1, 1, 16)
    loc = module.sampling_locations(query, torch.tensor([[[0.45]]]), 10)
    assert torch.allclose(loc[0, 0, 0] * 10 - 0.5, torch.tensor([5.0, 6.0, 7.0]), atol=1e-5)
    # A segment reference (c = 0.5, w = 0.4) puts the last point on the segment ends.
    seg = module.sampling_locations(query, torch.tensor([[[0.5, 0.4]]]), 10)
    assert seg[0, 0, 0, -1].item() == pytest.approx(0.7) and seg[0, 0, 1, -1].item() == pytest.approx(0.3)


def test_roi_align_hand_computed():
    # Ramp features f(i) = i: segment [1, 3] with 2 bins covers index coordinates
    # [0.5, 1.5] and [1.5, 2.5], whose means are exactly 1 and 2.
    ramp = torch.arange(8, dtype=torch.float32).view(1, 8, 1)
    out = roi_align_1d(ramp, torch.tensor([[[1.0, 3.0]]]), num_bins=2, samples_per_bin=2)
    assert out.flatten().tolist() == pytest.approx([1.0, 2.0])
    # Squares f(i) = i²: samples at x - 0.5 = 0.75, 1.25 | 1.75, 2.25
    # -> (0.75 + 1.75) / 2 = 1.25 and (3.25 + 5.25) / 2 = 4.25.
    squares = (torch.arange(8, dtype=torch.float32) ** 2).view(1, 8, 1)
    out = roi_align_1d(squares, torch.tensor([[[1.0, 3.0]]]), num_bins=2, samples_per_bin=2)
    assert out.flatten().tolist() == pytest.approx([1.25, 4.25])
    # One sample per bin reads the bin centre: bins of [0, 8] with 4 bins -> centres 1, 3, 5, 7
    # -> index 0.5, 2.5, 4.5, 6.5 -> squares interpolated: 0.5, 6.5, 20.5, 42.5.
    out = roi_align_1d(squares, torch.tensor([[[0.0, 8.0]]]), num_bins=4, samples_per_bin=1)
    assert out.flatten().tolist() == pytest.approx([0.5, 6.5, 20.5, 42.5])


def test_roi_align_clamps_to_valid_length():
    # Valid length 4 of 8 (padding holds 100s): samples beyond index 3 repeat snippet 3.
    feats = torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0, 100.0, 100.0, 100.0]).view(1, 8, 1)
    out = roi_align_1d(feats, torch.tensor([[[3.0, 7.0]]]), num_bins=2, samples_per_bin=1, lengths=torch.tensor([4]))
    # bin centres 4 and 6 -> index 3.5 and 5.5 -> clamped to 3 -> value 3.
    assert out.flatten().tolist() == pytest.approx([3.0, 3.0])
    # Before the start, index -0.5 clamps to 0.
    out = roi_align_1d(feats, torch.tensor([[[0.0, 1.0]]]), num_bins=1, samples_per_bin=1, lengths=torch.tensor([4]))
    assert out.item() == pytest.approx(0.0)


def test_roi_align_batched_shapes():
    feats = torch.randn(3, 10, 5)
    segs = torch.tensor([[0.0, 10.0], [2.0, 4.0]]).expand(3, 2, 2)
    out = roi_align_1d(feats, segs, num_bins=16)
    assert out.shape == (3, 2, 16, 5)
    # Mean over the bins of the whole sequence with uniform samples equals the mean of the
    # interpolated signal; for a segment [2, 4] of a constant signal it is that constant.
    const = torch.full((1, 10, 1), 7.0)
    assert roi_align_1d(const, torch.tensor([[[2.0, 4.0]]]), num_bins=16).mean().item() == pytest.approx(7.0)


def test_masked_group_norm_matches_group_norm_and_skips_padding():
    torch.manual_seed(0)
    norm = MaskedGroupNorm(4, 8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 8)
    no_pad = torch.zeros(2, 6, dtype=torch.bool)
    want = torch.nn.functional.group_norm(x.transpose(1, 2), 4, norm.weight, norm.bias).transpose(1, 2)
    assert torch.allclose(norm(x, no_pad), want, atol=1e-5)
    # Padding of any length and content leaves the valid part as if it were alone.
    padded = torch.cat((x[:1], torch.full((1, 3, 8), 50.0)), dim=1)
    mask = torch.tensor([[False] * 6 + [True] * 3])
    out = norm(padded, mask)
    assert torch.allclose(out[:, :6], want[:1], atol=1e-5)
    assert torch.count_nonzero(out[:, 6:]) == 0


def test_sine_position_encoding_uses_valid_length():
    mask = torch.tensor([[False] * 4 + [True] * 3, [False] * 7])
    pos = sine_position_encoding(mask, 8)
    assert pos.shape == (2, 7, 8)
    # Channel 0 is sin(position), channel 1 cos(position), position = (t + 0.5) / T_valid · 2π.
    t = torch.arange(4, dtype=torch.float32)
    angle = (t + 0.5) / 4 * 2 * math.pi
    assert torch.allclose(pos[0, :4, 0], angle.sin(), atol=1e-6)
    assert torch.allclose(pos[0, :4, 1], angle.cos(), atol=1e-6)
    # Same valid length, different padding: same encoding.
    alone = sine_position_encoding(torch.zeros(1, 4, dtype=torch.bool), 8)
    assert torch.allclose(pos[0, :4], alone[0], atol=1e-6)
