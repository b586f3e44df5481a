"""Defaults shared by the library and the CLI (no heavy imports: the CLI reads them for --help)."""

#: open_clip architecture of the published THUMOS14 / ActivityNet features (GAP's ViT-B/16).
DEFAULT_CLIP_MODEL = "ViT-B-16"
#: open_clip weights tag; a local weights file path is accepted wherever a tag is.
DEFAULT_CLIP_PRETRAINED = "openai"
#: Text prompt for class names; ``{}`` is replaced by the action name.
DEFAULT_PROMPT = "a video of a person doing {}"
#: Video frames per feature: the THUMOS14 convention (``psftr extract`` and ``psftr detect``).
DEFAULT_STRIDE = 8
#: Class-wise NMS tIoU of ``psftr detect``.
DEFAULT_NMS_IOU = 0.5
#: ``psftr detect``'s score threshold per model when none is given and the checkpoint has
#: no calibrated one (``psftr train`` chooses it on held-out seen classes). The localizer's
#: score is an inner-outer contrast of class probability; PSFTR's scoring multiplies that
#: by actionness, a smaller number.
DEFAULT_THRESHOLDS = {"baseline": 0.3, "psftr": 0.03}
