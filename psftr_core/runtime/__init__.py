"""What train, evaluate and detect share at run time, below all three of them.

- :mod:`~psftr_core.runtime.checkpoint`: the checkpoint format, loading and validation,
  the model it builds, its feature spec and the stored detect threshold.
- :mod:`~psftr_core.runtime.clip_source`: which CLIP text tower encodes a vocabulary.
- :mod:`~psftr_core.runtime.text_source`: the one rule that turns a vocabulary into
  text embeddings (a dataset's table or the CLIP text tower), for every command.
- :mod:`~psftr_core.runtime.inputs`: a split's windows and class texts.
"""
