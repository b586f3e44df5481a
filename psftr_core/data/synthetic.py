"""Synthetic CLIP-like feature datasets for zero-shot localization experiments.

``generate_dataset(out_dir, SyntheticConfig(...))`` writes a complete feature dataset
directory (docs/datasets.md): ``dataset.yaml``, ``annotations.json``, ``features/<id>.npy``
(float16 [T, D]), ``feature_info.json``, ``text_embeddings.npz``, ``splits.json`` and
``synthetic_config.json`` (the parameters that produced it).

How the features are built (the shared directions mu_T, mu_V, u_fg, g, o, eta and the
background parts are random but mutually orthogonal unit vectors in R^D while D allows):

- Text of class k:  ``t_k = norm(a_T·mu_T + s_k·sqrt(1 - a_T²))``, with the text
  semantics ``s_k = norm(g_group(k)·w_g + o_k·w_c)``: classes in the same group share
  a centroid ``g``, so related classes have related texts. Stored with norm ~8.
- Visual prototype of class k: ``p_k = norm(rho·M s_k + sqrt(1 - rho²)·eta_k)``. ``M``
  (``cos(phi)·I + sin(phi)·Q``, Q random orthogonal) is one linear map shared by all
  classes, so what is learned about it on seen classes transfers to unseen ones;
  ``eta_k`` is class-specific and cannot be predicted from the text.
- Frame t of a video:
  ``x_t = a_V·mu_V + Σ_i w_i(t)·c_i·(b_p·p_k(i) + b_f·u_fg) + (1 - Σw)·b_b·beta_t
  + b_s·scene_v + b_n·n_t``, L2-normalised and scaled to norm ~10, where
  ``mu_V`` is the image-side cone centre (the modality gap: ``cos(mu_V, mu_T) =
  gap_cos``), ``w_i`` the ramped weight of action instance i (0.5 at the annotated
  boundaries), ``c_i`` its strength, ``u_fg`` a class-agnostic "person acting"
  direction, ``beta_t`` a slowly switching background type (crowd, close-up, ...)
  of which some partly resemble a class's prototype, ``scene_v`` a per-video context
  that partly resembles a class of the video's action group (confuser), and ``n_t``
  AR(1) noise (temporally smooth), weighted ``b_n·sqrt(D / 512)`` so the noise along
  any single direction, and thus the difficulty, is about the same for every D.

Measured with the defaults (D = 512, seed 0): action frames have cosine ~0.29 with
their own class text and ~0.19 with other classes, background frames ~0.20 (the CLIP
ViT-B/16 regime of ~0.25-0.35 vs ~0.15-0.2); text-text cosine ~0.67 (0.64-0.80, higher
within a group), image-image ~0.72; image norm ~10, text norm ~8. The best class by
raw cosine is right on ~50 % of action frames among all 20 classes. A raw frame-text cosine
localizer works, but scene context, class-like backgrounds and the class-specific part
of the prototypes make it imperfect; a model that learns the shared map, actionness
(``u_fg``) and background types from seen classes can do better on unseen classes.
Test videos hold 2-3 classes each, so they also contain seen-class actions (in the
ground truth; zero-shot evaluation scores only the unseen classes).

Transfer (``transfer`` = tau in [0, 1]) sets what a classifier learned on seen classes can
know about unseen ones:

- tau = 0 (the geometry above): ``eta_k`` is unrelated to anything, and the text
  offsets ``o_k`` are mutually orthogonal, so a visual->text map fitted on seen classes
  knows nothing about the class-specific part of an unseen class (at most its group);
  the raw frame-text cosine, through ``rho·M s_k``, is the better classifier.
- tau = 1: the text semantics of every class lie in one shared space of
  ``max(2, min(K // 3, D // 4))`` dimensions (latent vectors grouped like the texts),
  which the seen classes of a split span, and every prototype is one fixed linear map
  of its class's semantics onto directions orthogonal to every text, plus small noise
  (``TRANSFER_NOISE``); rho = 0. Raw cosine carries no class information, a map
  learned on seen classes transfers to unseen ones.
- In between: ``s_k = norm(sqrt(1 - tau)·s_k⁰ + sqrt(tau)·latent_k)``,
  ``eta_k = norm(sqrt(1 - tau)·eta_k⁰ + sqrt(tau)·mapped_k)`` and
  ``rho = proto_alignment·(1 - tau)²``. The new directions come from a random stream of
  their own, so everything else (videos, instances, noise) is the same for every tau,
  and tau = 0 gives the files of generator version 1 byte for byte.

Everything derives from ``seed``: the same config gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.io.atomic import save_npy, write_bytes, write_json, write_text

GENERATOR_VERSION = 1
TRANSFER_NOISE = 0.25  # at transfer 1: weight of the unpredictable part of a prototype (vs 1 predicted)
# Keys added after version 1, with the value that reproduces version 1: synthetic_config.json
# records them only when they differ, so default data stay byte-identical to version 1.
TEXT_VIEWS_FILE = "text_views.npz"  # [V, D] per class, only when text_views > 1
_LATER_KEYS = {"transfer": 0.0, "text_views": 1, "text_view_noise": 0.6}


@dataclass
class SyntheticConfig:
    """Parameters of the synthetic generator. Defaults give a small dataset (200 videos of
    30-120 s, 20 classes, D = 512, ~56k features) that a model can train on a CPU in minutes."""

    seed: int = 0
    name: str = "synthetic"

    # --- sizes ---
    num_classes: int = 20
    num_groups: int = 5  # groups of related classes (shared text centroid)
    feature_dim: int = 512
    num_train_videos: int = 120
    num_test_videos: int = 80
    train_subset: str = "training"
    test_subset: str = "validation"

    # --- timing (THUMOS-like: one feature per 8 frames at 30 fps = 3.75 features/s) ---
    video_fps: float = 30.0
    frame_stride: int = 8
    video_seconds: tuple[float, float] = (30.0, 120.0)  # uniform
    instance_seconds: tuple[float, float] = (2.0, 30.0)  # log-uniform
    instances_per_video: tuple[int, int] = (2, 7)  # inclusive range (fewer if they don't fit)
    classes_per_train_video: tuple[int, int] = (1, 2)  # inclusive
    classes_per_test_video: tuple[int, int] = (2, 3)  # >= 2 so test videos mix seen and unseen
    max_action_fraction: float = 0.5  # at most this share of a video is covered by actions
    min_gap_seconds: float = 1.5  # between instances; >= ramp_seconds so ramps don't overlap
    ramp_seconds: float = 1.5  # soft on/offset: weight goes 0 -> 1 over this span, 0.5 at the boundary
    instance_strength: tuple[float, float] = (0.6, 1.0)  # uniform per instance

    # --- text geometry ---
    text_common: float = 0.8  # a_T: weight of the shared text direction (sets text-text cos ~0.64-0.8)
    text_group: float = 0.7  # w_g: group centroid weight in the text semantics
    text_class: float = 0.8  # w_c: class-specific weight in the text semantics
    text_norm: float = 8.0

    # --- visual geometry ---
    gap_cos: float = 0.35  # cos(mu_V, mu_T): the modality gap
    visual_common: float = 0.7  # a_V: weight of the image cone centre in every frame
    proto_alignment: float = 0.5  # rho: share of a class prototype predicted by its text (via M)
    map_rotation_deg: float = 35.0  # phi: how far the shared map M rotates text semantics
    action_weight: float = 0.45  # b_p: class prototype weight in action frames
    foreground_weight: float = 0.4  # b_f: class-agnostic actionness direction in action frames
    background_weight: float = 0.5  # b_b: background type weight in non-action frames
    num_background_types: int = 10
    background_class_likeness: float = 0.85  # how much a background type resembles a class prototype
    background_mean_seconds: float = 8.0  # mean duration before the background type switches
    scene_weight: float = 0.5  # b_s: per-video scene context
    scene_class_likeness: float = 0.8  # share of the scene that resembles a class of the video's group
    noise_weight: float = 0.45  # b_n: temporally smooth noise, at D = noise_reference_dim
    noise_reference_dim: int = 512  # noise weight scales by sqrt(D / this), so the noise seen
    #   along any one direction (e.g. a text) and hence the difficulty do not change with D
    noise_ar: float = 0.8  # AR(1) coefficient per feature step (~1.3 s correlation time)
    image_norm: float = 10.0
    # --- what transfers from seen to unseen classes ("Transfer" in the module docstring) ---
    # 0: raw frame-text cosine is the better classifier of unseen classes and a
    # visual->text map learned on seen classes does not transfer; 1: every prototype is a
    # shared linear map (far from the identity) of its text semantics plus small noise,
    # raw cosine is near chance and a map learned on seen classes transfers. In between:
    # interpolated. 0 reproduces generator version 1 byte for byte.
    transfer: float = 0.0
    # --- several noisy text views per class (prompt ensembling) ---
    # 1: one text embedding per class, as before. V > 1: each class gets V views, its
    # true text direction plus an independent random direction of norm text_view_noise
    # (cos(view, true) ~ 1/sqrt(1 + noise^2)), stored in text_views.npz ({name: [V, D]});
    # text_embeddings.npz then holds view 0 (one description), so averaging the views is
    # what a user with several descriptions can do (benchmarks/text_views.py).
    text_views: int = 1
    text_view_noise: float = 0.6

    # --- splits ---
    num_splits: int = 10  # per ratio, in splits.json
    split_ratios: tuple[str, ...] = ("75_25", "50_50")
    prompt: str = DEFAULT_PROMPT

    @property
    def feature_fps(self) -> float:
        return self.video_fps / self.frame_stride

    def class_names(self) -> list[str]:
        """Class names: ``group<g> action<kk>`` (the group is visible to humans only)."""
        return [f"group{self.group_of(k)} action{k:02d}" for k in range(self.num_classes)]

    def group_of(self, k: int) -> int:
        """The action group of class ``k``."""
        return k % max(1, min(self.num_groups, self.num_classes))

    def validate(self) -> None:
        """Raise ValueError on inconsistent parameters."""
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2 (a split needs a seen and an unseen class)")
        if self.feature_dim < 8:
            raise ValueError("feature_dim must be >= 8")
        if self.num_train_videos < 1 or self.num_test_videos < 1:
            raise ValueError("need at least one training and one test video")
        for name in ("video_seconds", "instance_seconds", "instances_per_video",
                     "classes_per_train_video", "classes_per_test_video", "instance_strength"):
            lo, hi = getattr(self, name)
            if lo > hi or lo <= 0:
                raise ValueError(f"{name} must be a (low, high) pair with 0 < low <= high")
        if self.classes_per_test_video[1] > self.num_classes or self.classes_per_train_video[1] > self.num_classes:
            raise ValueError("classes per video cannot exceed num_classes")
        if not 0 < self.max_action_fraction <= 1:
            raise ValueError("max_action_fraction must be in (0, 1]")
        if self.video_fps <= 0 or self.frame_stride < 1:
            raise ValueError("video_fps must be > 0 and frame_stride >= 1")
        if not 0 <= self.noise_ar < 1:
            raise ValueError("noise_ar must be in [0, 1)")
        for name in ("text_common", "gap_cos", "proto_alignment", "background_class_likeness",
                     "scene_class_likeness", "transfer"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.text_views < 1 or self.text_view_noise < 0:
            raise ValueError("text_views must be >= 1 and text_view_noise >= 0")
        if self.num_background_types < 1 or self.noise_reference_dim < 1 or self.num_splits < 1:
            raise ValueError("num_background_types, noise_reference_dim and num_splits must be >= 1")
        for ratio in self.split_ratios:
            _parse_ratio(ratio)


def _parse_ratio(ratio: str) -> float:
    """'75_25' -> 0.25 (the unseen share)."""
    try:
        seen, unseen = (int(p) for p in ratio.split("_"))
    except ValueError:
        raise ValueError(f"split ratio {ratio!r} must look like '75_25'") from None
    if seen <= 0 or unseen <= 0:
        raise ValueError(f"split ratio {ratio!r} needs positive parts")
    return unseen / (seen + unseen)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def _random_units(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return _unit(rng.standard_normal((n, dim)))


def _orthonormal_directions(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """[n, dim] random unit vectors; the first min(n, dim) are mutually orthogonal."""
    first = min(n, dim)
    q, r = np.linalg.qr(rng.standard_normal((dim, first)))
    ortho = (q * np.sign(np.diag(r))).T
    return np.concatenate([ortho, _random_units(rng, n - first, dim)], axis=0)


class _ClassStream:
    """Draws classes from a stream of seeded permutations, so every class comes up
    equally often; one draw never repeats a class."""

    def __init__(self, rng: np.random.Generator, num_classes: int) -> None:
        self.rng = rng
        self.num_classes = num_classes
        self.pool: list[int] = []

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            pick = next((i for i, c in enumerate(self.pool) if c not in out), None)
            if pick is None:
                self.pool.extend(int(c) for c in self.rng.permutation(self.num_classes))
                continue
            out.append(self.pool.pop(pick))
        return out


@dataclass
class _World:
    """The shared geometry: texts, prototypes and the directions every video uses."""

    text: np.ndarray  # [K, D] stored text embeddings (norm ~text_norm)
    prototypes: np.ndarray  # [K, D] unit visual class prototypes
    mu_v: np.ndarray  # [D] image cone centre
    u_fg: np.ndarray  # [D] actionness direction
    backgrounds: np.ndarray  # [B, D] unit background types
    group_members: list[list[int]] = field(default_factory=list)


def _build_world(cfg: SyntheticConfig) -> _World:
    rng = np.random.default_rng([cfg.seed, 0])
    K, D = cfg.num_classes, cfg.feature_dim
    groups = [cfg.group_of(k) for k in range(K)]
    num_groups = max(groups) + 1

    B = cfg.num_background_types
    # Shared directions are mutually orthogonal (as far as D allows), so the geometry and
    # the difficulty do not depend on chance overlaps at small D.
    dirs = _orthonormal_directions(rng, 3 + num_groups + 2 * K + B, D)
    mu_t, ortho, u_fg = dirs[0], dirs[1], dirs[2]
    centroids = dirs[3 : 3 + num_groups]
    offsets = dirs[3 + num_groups : 3 + num_groups + K]
    class_specific = dirs[3 + num_groups + K : 3 + num_groups + 2 * K]
    background_random = dirs[3 + num_groups + 2 * K :]
    mu_v = cfg.gap_cos * mu_t + np.sqrt(1 - cfg.gap_cos**2) * ortho  # at angle acos(gap_cos) from mu_T

    semantics = _unit(cfg.text_group * centroids[groups] + cfg.text_class * offsets)
    rho = cfg.proto_alignment
    if cfg.transfer > 0:  # at 0 nothing below is drawn, so version-1 data stay byte-identical
        semantics, rho, class_specific = _transfer_parts(cfg, groups, dirs, semantics, class_specific)
    a_t = cfg.text_common
    text_unit = _unit(a_t * mu_t + np.sqrt(1 - a_t**2) * semantics)
    text_scale = cfg.text_norm * (1 + 0.03 * rng.standard_normal((K, 1)))
    text = text_unit * text_scale

    # Shared map M = cos(phi) I + sin(phi) Q, Q a random orthogonal matrix.
    q, r = np.linalg.qr(rng.standard_normal((D, D)))
    q = q * np.sign(np.diag(r))
    phi = np.deg2rad(cfg.map_rotation_deg)
    mapped = _unit(np.cos(phi) * semantics + np.sin(phi) * semantics @ q.T)
    prototypes = _unit(rho * mapped + np.sqrt(1 - rho**2) * class_specific)

    like = cfg.background_class_likeness
    bg_classes = rng.integers(0, K, size=B)
    backgrounds = _unit(like * prototypes[bg_classes] + np.sqrt(1 - like**2) * background_random)
    members = [[k for k in range(K) if groups[k] == g] for g in range(num_groups)]
    return _World(text=text, prototypes=prototypes, mu_v=mu_v, u_fg=u_fg,
                  backgrounds=backgrounds, group_members=members)


def _transfer_parts(cfg: SyntheticConfig, groups: list[int], dirs: np.ndarray, semantics: np.ndarray,
                    class_specific: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Text semantics [K, D], alignment rho and class-specific directions eta [K, D] at
    ``cfg.transfer`` = tau > 0 (see "Transfer" in the module docstring).

    Drawn from a random stream of their own, so the rest of the world is the same as at
    tau = 0. ``dirs`` [n, D] are the shared directions, which the new ones avoid while D
    allows.
    """
    tau = cfg.transfer
    rng = np.random.default_rng([cfg.seed, 6])
    K, D = semantics.shape
    rank = max(2, min(cfg.num_classes // 3, D // 4))  # the seen classes of a split span it
    raw = rng.standard_normal((D, 2 * rank))
    if len(dirs) + 2 * rank <= D:
        raw -= dirs.T @ (dirs @ raw)
    q, r = np.linalg.qr(raw)
    basis = (q * np.sign(np.diag(r))).T  # [2 rank, D] orthonormal
    text_basis, visual_basis = basis[:rank], basis[rank:]
    # Latent semantics in R^rank, grouped like the texts; every class lies in their span.
    num_groups = max(groups) + 1
    latent = _unit(cfg.text_group * _random_units(rng, num_groups, rank)[groups]
                   + cfg.text_class * _random_units(rng, K, rank))
    semantics = _unit(np.sqrt(1 - tau) * semantics + np.sqrt(tau) * latent @ text_basis)
    # The shared map: text semantics -> visual directions orthogonal to every text.
    text_to_visual = text_basis.T @ visual_basis  # [D, D]
    predicted = _unit(_unit(semantics @ text_to_visual) + TRANSFER_NOISE * _random_units(rng, K, D))
    class_specific = _unit(np.sqrt(1 - tau) * class_specific + np.sqrt(tau) * predicted)
    return semantics, cfg.proto_alignment * (1 - tau) ** 2, class_specific


def _place_instances(rng: np.random.Generator, duration: float, cfg: SyntheticConfig,
                     min_count: int = 1) -> list[tuple[float, float]]:
    """Non-overlapping (start, end) instances, at least min_gap apart, sorted by start.

    Draws ``instances_per_video`` log-uniform lengths, then drops instances (down to
    ``min_count``) and finally shortens them (not below the minimum length) until they
    fit ``max_action_fraction`` of the video.
    """
    lo, hi = cfg.instances_per_video
    n = max(int(rng.integers(lo, hi + 1)), min_count)
    min_len = min(cfg.instance_seconds[0], duration)
    log_lo, log_hi = np.log(cfg.instance_seconds[0]), np.log(cfg.instance_seconds[1])
    lengths = list(np.exp(rng.uniform(log_lo, log_hi, size=n)))
    budget = cfg.max_action_fraction * duration

    def room(count: int) -> float:  # action time available for `count` instances
        return min(budget, duration - (count - 1) * cfg.min_gap_seconds)

    while len(lengths) > max(min_count, 1) and sum(lengths) > room(len(lengths)):
        lengths.pop()
    while len(lengths) > 1 and len(lengths) * min_len > duration - (len(lengths) - 1) * cfg.min_gap_seconds:
        lengths.pop()  # even minimum-length instances don't fit: fewer than min_count
    if sum(lengths) > room(len(lengths)):  # shorten proportionally, keeping the minimum length
        scale = room(len(lengths)) / sum(lengths)
        lengths = [max(length * scale, min_len) for length in lengths]
    n = len(lengths)
    free = max(duration - sum(lengths) - (n - 1) * cfg.min_gap_seconds, 0.0)
    gaps = rng.dirichlet(np.ones(n + 1)) * free
    order = rng.permutation(n)
    instances, t = [], gaps[0]
    for i, j in enumerate(order):
        start, end = t, t + lengths[j]
        instances.append((float(start), float(min(end, duration))))
        t = end + cfg.min_gap_seconds + gaps[i + 1]
    return instances


def _ar1_noise(rng: np.random.Generator, steps: int, dim: int, coef: float) -> np.ndarray:
    """[steps, dim] stationary AR(1) noise with unit expected row norm."""
    burn = 20
    eps = rng.standard_normal((steps + burn, dim)) / np.sqrt(dim)
    out = np.empty_like(eps)
    out[0] = eps[0]
    gain = np.sqrt(1 - coef**2)
    for t in range(1, len(eps)):
        out[t] = coef * out[t - 1] + gain * eps[t]
    return out[burn:]


def _background_track(rng: np.random.Generator, times: np.ndarray, cfg: SyntheticConfig,
                      world: _World) -> np.ndarray:
    """[T, D] background type per snippet, switching every ~background_mean_seconds,
    with ~1 s cross-fades."""
    num_types = len(world.backgrounds)
    video_types = rng.choice(num_types, size=min(3, num_types), replace=False)
    weights = np.zeros((len(times), num_types))
    t0 = 0.0
    while t0 <= times[-1]:
        t1 = t0 + rng.exponential(cfg.background_mean_seconds) + 1.0
        weights[(times >= t0) & (times < t1), rng.choice(video_types)] = 1.0
        t0 = t1
    sigma = max(cfg.feature_fps * 0.5, 1e-6)
    kernel_half = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-kernel_half, kernel_half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(weights, ((kernel_half, kernel_half), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(num_types)], axis=1)
    return smooth @ world.backgrounds


def _instance_weight(times: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """Soft membership: 0.5 at the annotated boundaries, 1 inside, 0 beyond ramp/2."""
    ramp = max(ramp, 1e-6)
    rise = (times - start) / ramp + 0.5
    fall = (end - times) / ramp + 0.5
    return np.clip(np.minimum(rise, fall), 0.0, 1.0)


def _make_video(index: int, is_test: bool, classes: list[int], cfg: SyntheticConfig,
                world: _World) -> tuple[np.ndarray, dict, dict]:
    rng = np.random.default_rng([cfg.seed, 2 if is_test else 1, index])
    D = cfg.feature_dim
    seconds = rng.uniform(*cfg.video_seconds)
    frames = max(int(round(seconds * cfg.video_fps)), cfg.frame_stride)
    duration = frames / cfg.video_fps
    T = frames // cfg.frame_stride
    times = (np.arange(T) + 0.5) * cfg.frame_stride / cfg.video_fps

    instances = _place_instances(rng, duration, cfg, min_count=len(classes))
    classes = classes[: len(instances)]
    labels = list(classes) + [int(c) for c in rng.choice(classes, size=len(instances) - len(classes))]
    labels = [labels[i] for i in rng.permutation(len(labels))]

    foreground = np.zeros((T, D))
    total_weight = np.zeros(T)
    for (start, end), k in zip(instances, labels):
        w = _instance_weight(times, start, end, cfg.ramp_seconds) * rng.uniform(*cfg.instance_strength)
        foreground += w[:, None] * (cfg.action_weight * world.prototypes[k] + cfg.foreground_weight * world.u_fg)
        total_weight += w
    background = (1 - np.clip(total_weight, 0, 1))[:, None] * cfg.background_weight \
        * _background_track(rng, times, cfg, world)

    confuser = int(rng.choice(world.group_members[cfg.group_of(classes[0])]))
    like = cfg.scene_class_likeness
    scene = _unit(like * world.prototypes[confuser] + np.sqrt(1 - like**2) * rng.standard_normal(D) / np.sqrt(D))
    noise = _ar1_noise(rng, T, D, cfg.noise_ar)

    x = cfg.visual_common * world.mu_v + foreground + background + cfg.scene_weight * scene \
        + cfg.noise_weight * np.sqrt(D / cfg.noise_reference_dim) * noise
    norm_jitter = np.exp(0.05 * _ar1_noise(rng, T, 1, cfg.noise_ar)[:, 0])  # norms vary ~5 % like CLIP
    feats = (_unit(x) * (cfg.image_norm * norm_jitter)[:, None]).astype(np.float16)

    names = cfg.class_names()
    record = {
        "subset": cfg.test_subset if is_test else cfg.train_subset,
        "duration": round(duration, 6),
        "fps": cfg.video_fps,
        "annotations": [{"segment": [round(s, 3), round(e, 3)], "label": names[k]}
                        for (s, e), k in zip(instances, labels)],
    }
    info = {"snippet_length": T, "snippet_duration": round(T * cfg.frame_stride / cfg.video_fps, 6),
            "video_fps": cfg.video_fps, "frame_length": frames}
    return feats, record, info


def make_splits(cfg: SyntheticConfig) -> dict[str, list[dict[str, list[str]]]]:
    """``num_splits`` seen/unseen splits per ratio. Unseen sets are drawn from a stream of
    seeded permutations, so over the splits every class is unseen about equally often
    (and every class is unseen at least once when num_splits * unseen >= num_classes)."""
    names = cfg.class_names()
    K = cfg.num_classes
    out: dict[str, list[dict[str, list[str]]]] = {}
    for r, ratio in enumerate(cfg.split_ratios):
        n_unseen = min(max(int(round(_parse_ratio(ratio) * K)), 1), K - 1)
        stream = _ClassStream(np.random.default_rng([cfg.seed, 3, r]), K)
        splits = []
        for _ in range(cfg.num_splits):
            unseen = set(stream.take(n_unseen))
            splits.append({"seen": [names[k] for k in range(K) if k not in unseen],
                           "unseen": [names[k] for k in range(K) if k in unseen]})
        out[ratio] = splits
    return out


def _dataset_yaml(cfg: SyntheticConfig) -> str:
    import yaml

    doc = {
        "name": cfg.name,
        "annotations": "annotations.json",
        "features": "features",
        "feature_info": "feature_info.json",
        "feature_fps": cfg.feature_fps,
        "train_subset": cfg.train_subset,
        "test_subset": cfg.test_subset,
        "text_embeddings": "text_embeddings.npz",
        "splits": "splits.json",
        "prompt": cfg.prompt,
    }
    return "# synthetic CLIP-like dataset written by psftr_core.data.synthetic (see synthetic_config.json)\n" \
        + yaml.safe_dump(doc, sort_keys=False)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``np.load``-able .npz with fixed zip timestamps (np.savez stamps the current
    time, which would make reruns differ byte-wise)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            entry = io.BytesIO()
            np.save(entry, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), entry.getvalue())
    return buffer.getvalue()


def generate_dataset(out_dir: str | Path, cfg: SyntheticConfig | None = None) -> Path:
    """Write a synthetic feature dataset into ``out_dir`` (created if needed) and return it.

    Deterministic: the same ``cfg`` (including ``seed``) gives byte-identical files.
    ``dataset.yaml`` is written last, so an interrupted run never leaves a directory
    that loads as a complete dataset. Rerunning into the same directory replaces the
    previous synthetic dataset; a directory holding some other dataset is refused
    (InputError).
    """
    cfg = cfg or SyntheticConfig()
    cfg.validate()
    out = Path(out_dir)
    if (out / "dataset.yaml").exists() and not (out / "synthetic_config.json").exists():
        raise InputError(f"{out} already holds a dataset that this generator did not write; "
                         "choose an empty or new directory")
    (out / "features").mkdir(parents=True, exist_ok=True)
    if (out / "dataset.yaml").exists():
        (out / "dataset.yaml").unlink()

    world = _build_world(cfg)
    names = cfg.class_names()
    database: dict[str, dict] = {}
    feature_info: dict[str, dict] = {}
    for is_test, count, span in ((False, cfg.num_train_videos, cfg.classes_per_train_video),
                                 (True, cfg.num_test_videos, cfg.classes_per_test_video)):
        stream = _ClassStream(np.random.default_rng([cfg.seed, 4, int(is_test)]), cfg.num_classes)
        count_rng = np.random.default_rng([cfg.seed, 5, int(is_test)])
        for i in range(count):
            video_classes = stream.take(int(count_rng.integers(span[0], span[1] + 1)))
            video_id = f"synth_{'test' if is_test else 'train'}_{i:04d}"
            feats, record, info = _make_video(i, is_test, video_classes, cfg, world)
            save_npy(out / "features" / f"{video_id}.npy", feats)
            database[video_id] = record
            feature_info[video_id] = info

    for path in (out / "features").glob("synth_*.npy"):  # left over from an earlier, larger run
        if path.stem not in database:
            path.unlink()
    write_json(out / "annotations.json", {"classes": names, "database": database})
    write_json(out / "feature_info.json", feature_info)
    views = text_views(cfg, world.text)
    write_bytes(out / "text_embeddings.npz",
                _npz_bytes({name: views[k, 0].astype(np.float32) for k, name in enumerate(names)}))
    view_file = out / TEXT_VIEWS_FILE
    if cfg.text_views > 1:
        write_bytes(view_file, _npz_bytes({name: views[k].astype(np.float32) for k, name in enumerate(names)}))
    elif view_file.exists():  # left over from an earlier run with views
        view_file.unlink()
    write_json(out / "splits.json", make_splits(cfg))
    recorded = {k: v for k, v in dataclasses.asdict(cfg).items() if not (k in _LATER_KEYS and v == _LATER_KEYS[k])}
    write_json(out / "synthetic_config.json", {"generator_version": GENERATOR_VERSION, "config": recorded})
    write_text(out / "dataset.yaml", _dataset_yaml(cfg))
    return out


def text_views(cfg: SyntheticConfig, text: np.ndarray) -> np.ndarray:
    """[K, V, D] text views: ``text`` itself when ``cfg.text_views`` is 1; else each view
    is the true direction plus a random one of norm ``text_view_noise``, at the true norm.
    Drawn from their own stream, so the rest of the dataset does not change."""
    if cfg.text_views == 1:
        return text[:, None, :]
    rng = np.random.default_rng([cfg.seed, 7])
    K, D = text.shape
    norms = np.linalg.norm(text, axis=1, keepdims=True)[:, None, :]
    noise = _unit(rng.standard_normal((K, cfg.text_views, D)))
    return _unit(_unit(text)[:, None, :] + cfg.text_view_noise * noise) * norms


def synthetic_config_from_dict(data: dict) -> SyntheticConfig:
    """Rebuild a SyntheticConfig from ``dataclasses.asdict`` output (lists -> tuples)."""
    known = {f.name: f for f in dataclasses.fields(SyntheticConfig)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown SyntheticConfig keys: {sorted(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return SyntheticConfig(**values)


__all__ = ["SyntheticConfig", "TEXT_VIEWS_FILE", "text_views", "generate_dataset", "make_splits", "synthetic_config_from_dict", "GENERATOR_VERSION"]
