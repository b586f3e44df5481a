"""Prompt ensembling with the tiny CLIP: an action's embedding is exactly the normalised
mean of its texts' unit embeddings, cached under a key of the exact list of texts, and
descriptions change which action a planted feature matches."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.data.vocabulary import TextRecipe
from psftr_core.features.clip import encode_text_lists, encode_texts, text_list_key
from psftr_core.features.text import TextTower, encode_class_names


@pytest.fixture(scope="module")
def tower(tiny_clip_files):
    return TextTower(model_name=tiny_clip_files.name, pretrained=str(tiny_clip_files.weights),
                     config=None, source="the test")


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_ensemble_is_the_normalised_mean_of_unit_embeddings(tiny_clip, tmp_path):
    texts = ["a video of diving", "a person jumps into water from a board", "a diver somersaults"]
    by_hand = unit(encode_texts(tiny_clip, texts, prompt="{}").astype(np.float64))
    expected = unit(by_hand.mean(axis=0))
    got = encode_text_lists(tiny_clip, [texts, texts[:1]], cache_dir=tmp_path)
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[1], by_hand[0], rtol=0, atol=1e-6)  # one text: itself, unit length
    assert not np.allclose(got[0], got[1], atol=1e-3)


def test_cache_key_is_the_exact_list(tiny_clip, tmp_path):
    texts = ["a video of diving", "jumps into water"]
    assert text_list_key(tiny_clip, texts) == text_list_key(tiny_clip, list(texts))
    assert text_list_key(tiny_clip, texts) == text_list_key(tiny_clip, texts, "auto")  # auto is float32
    others = [["a video of diving", "jumps into the water"], texts[::-1], texts[:1], texts + [""]]
    keys = {text_list_key(tiny_clip, t) for t in others} | {text_list_key(tiny_clip, texts, "bfloat16")}
    assert text_list_key(tiny_clip, texts) not in keys and len(keys) == len(others) + 1


def test_cached_rows_are_reused_and_never_shared(tiny_clip, tmp_path):
    if tiny_clip.weights_id == "random":
        pytest.skip("random weights are not cached")
    first = encode_text_lists(tiny_clip, [["diving", "jumps in"]], cache_dir=tmp_path)
    path = tmp_path / "text" / f"{text_list_key(tiny_clip, ['diving', 'jumps in'])}.npy"
    np.save(path, np.full(first.shape[1], 0.5, dtype=np.float32))  # a planted entry is what is read back
    again = encode_text_lists(tiny_clip, [["diving", "jumps in"], ["diving", "jumps out"]], cache_dir=tmp_path)
    np.testing.assert_array_equal(again[0], 0.5)
    assert not np.allclose(again[1], 0.5)
    assert len(list((tmp_path / "text").glob("*.npy"))) == 2


def test_class_names_with_a_recipe_go_through_the_same_function(tower, tiny_clip, tmp_path):
    recipe = TextRecipe(("a video of {}", "{} in a clip"), {"diving": ("jumps in",)})
    got = encode_class_names(["Diving", "running"], tower, recipe, cache_dir=tmp_path)
    expected = encode_text_lists(tiny_clip, [["a video of Diving", "Diving in a clip", "jumps in"],
                                             ["a video of running", "running in a clip"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # one template and no description: the embedding of before (not normalised), same cache
    plain = encode_class_names(["running"], tower, "a video of {}", cache_dir=tmp_path)
    np.testing.assert_array_equal(plain, encode_texts(tiny_clip, ["running"], prompt="a video of {}"))


def test_descriptions_change_which_action_a_planted_feature_matches(tower, tiny_clip, tmp_path):
    # A planted feature that is the text embedding of what an action looks like. The tiny
    # CLIP has random weights, so the action its bare name matches least is given that
    # description: it must become the best match, the other actions unchanged.
    seen = "a red ball bounces on a wooden floor"
    planted = unit(encode_texts(tiny_clip, [seen], prompt="{}")[0])
    vocabulary = ["ball game", "knitting", "pole vault", "surfing"]
    prompt = "a video of a person doing {}"
    bare = unit(encode_class_names(vocabulary, tower, prompt, cache_dir=tmp_path))
    target = int(np.argmin(bare @ planted))
    recipe = TextRecipe((), {vocabulary[target]: (seen,)})
    described = unit(encode_class_names(vocabulary, tower, recipe, cache_dir=tmp_path, default_prompt=prompt))
    assert int(np.argmax(bare @ planted)) != target
    assert int(np.argmax(described @ planted)) == target
    others = [k for k in range(len(vocabulary)) if k != target]
    np.testing.assert_allclose(described[others], bare[others], atol=1e-6)  # no descriptions: as before
