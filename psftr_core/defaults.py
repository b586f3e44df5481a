"""Defaults shared by the library and the CLI (no heavy imports: the CLI reads them for --help)."""

#: open_clip architecture of the published THUMOS14 / ActivityNet features (GAP's ViT-B/16).
DEFAULT_CLIP_MODEL = "ViT-B-16"
#: open_clip weights tag; a local weights file path is accepted wherever a tag is.
DEFAULT_CLIP_PRETRAINED = "openai"
#: Text prompt for class names; ``{}`` is replaced by the action name.
DEFAULT_PROMPT = "a video of a person doing {}"
