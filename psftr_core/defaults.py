"""Defaults shared by the library and the CLI (no heavy imports: the CLI reads them for --help)."""

#: open_clip architecture of the published THUMOS14 / ActivityNet features (GAP's ViT-B/16).
DEFAULT_CLIP_MODEL = "ViT-B-16"
#: open_clip weights tag; a local weights file path is accepted wherever a tag is.
DEFAULT_CLIP_PRETRAINED = "openai"
#: Text prompt for class names; ``{}`` is replaced by the action name.
DEFAULT_PROMPT = "a video of a person doing {}"
#: Video frames per feature: the THUMOS14 convention (``psftr extract`` and ``psftr detect``).
DEFAULT_STRIDE = 8
#: ``psftr detect``'s score threshold per model when none is given and the checkpoint has
#: no calibrated one (``psftr train`` chooses it on held-out seen classes). Both scores are
#: in [0, 1]. The localizer's is an outer-inner contrast of a class curve (the demo's
#: actions score 0.5-0.8); PSFTR's is σ(actionness) × class evidence (softmax over the vocabulary
#: or that contrast), a product of two numbers below 1 and so much smaller
#: (``psftr_core.infer.detectors.detect_threshold`` has the details). The NMS tIoU of
#: detect is the model's own (``psftr_core.infer.filtering``), so it has no default here.
DEFAULT_THRESHOLDS = {"localizer": 0.3, "psftr": 0.03}
