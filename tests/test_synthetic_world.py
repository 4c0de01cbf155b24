"""The synthetic world: seeded, compositional, and captioned truthfully."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from mediarec.encoders.synthetic.world import (
    ATTRIBUTE_FAMILIES,
    Attributes,
    WorldGenerator,
    attribute_phrases,
    canonical_caption,
    format_caption,
    hard_negative_attributes,
    hard_negative_captions,
    partial_caption,
    partial_hard_negative_captions,
    random_caption_style,
    value_words,
)


def _mentions(caption: str, attrs: Attributes) -> bool:
    return all(
        any(word in caption for word in value_words(family, value))
        for family, value in attrs.as_dict().items()
    )


def test_same_seed_gives_identical_posts() -> None:
    first = WorldGenerator(seed=5).posts(20)
    second = WorldGenerator(seed=5).posts(20)
    assert [p.caption for p in first] == [p.caption for p in second]
    assert [p.attributes for p in first] == [p.attributes for p in second]
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_different_seeds_give_different_posts() -> None:
    first = WorldGenerator(seed=5).posts(20)
    second = WorldGenerator(seed=6).posts(20)
    assert [p.attributes for p in first] != [p.attributes for p in second]


def test_every_value_of_every_family_appears() -> None:
    world = WorldGenerator(seed=0)
    seen: dict[str, set[str]] = {family: set() for family in ATTRIBUTE_FAMILIES}
    for _ in range(600):
        for family, value in world.sample_attributes().as_dict().items():
            seen[family].add(value)
    assert len(ATTRIBUTE_FAMILIES) >= 5
    for family, values in ATTRIBUTE_FAMILIES.items():
        assert seen[family] == set(values)


def test_images_have_the_requested_size_and_mode() -> None:
    for size in (64, 128):
        image = WorldGenerator(seed=1, image_size=size).post().image
        assert image.mode == "RGB"
        assert image.size == (size, size)


def test_pictures_of_different_attributes_differ() -> None:
    world = WorldGenerator(seed=2)
    attrs = Attributes("circle", "red", "two", "beach", "solid")
    base = np.asarray(world.render(attrs), dtype=np.int16)
    for family, negative in hard_negative_attributes(attrs, random.Random(0)).items():
        other = np.asarray(world.render(negative), dtype=np.int16)
        assert np.abs(base - other).mean() > 1.0, family


def test_hard_negatives_differ_in_exactly_their_family() -> None:
    world = WorldGenerator(seed=3)
    rng = random.Random(4)
    for _ in range(200):
        attrs = world.sample_attributes()
        negatives = hard_negative_attributes(attrs, rng)
        assert set(negatives) == set(ATTRIBUTE_FAMILIES)
        for family, negative in negatives.items():
            changed = [f for f in ATTRIBUTE_FAMILIES if getattr(negative, f) != getattr(attrs, f)]
            assert changed == [family]


def test_hard_negative_captions_are_canonical_captions_of_one_changed_attribute() -> None:
    attrs = Attributes("star", "blue", "three", "forest", "dotted")
    captions = hard_negative_captions(attrs, random.Random(9))
    negatives = hard_negative_attributes(attrs, random.Random(9))
    assert captions == {f: canonical_caption(a) for f, a in negatives.items()}
    assert canonical_caption(attrs) not in captions.values()
    assert hard_negative_captions(attrs, random.Random(9)) == captions  # deterministic per rng


def test_canonical_caption_reads_naturally() -> None:
    attrs = Attributes("circle", "red", "two", "beach", "striped")
    assert canonical_caption(attrs) == "two striped red circles on a sandy beach"
    single = Attributes("cross", "white", "one", "night sky", "solid")
    assert canonical_caption(single) == "one solid white cross under a night sky"


def test_every_paraphrase_mentions_every_attribute() -> None:
    world = WorldGenerator(seed=7)
    for post in world.posts(300):
        assert _mentions(post.caption, post.attributes), post.caption


def test_paraphrases_vary_the_wording() -> None:
    world = WorldGenerator(seed=8)
    attrs = Attributes("heart", "pink", "four", "city street", "outlined")
    captions = {world.caption(attrs) for _ in range(50)}
    assert len(captions) > 10
    assert world.caption(attrs, paraphrase=False) == canonical_caption(attrs)


def test_styled_hard_negatives_share_the_wording_of_the_true_caption() -> None:
    rng = random.Random(1)
    attrs = Attributes("square", "green", "one", "snowy field", "solid")
    style = random_caption_style(rng)
    true = format_caption(attrs, style).split()
    for caption in hard_negative_captions(attrs, rng, style).values():
        assert caption != " ".join(true)
        assert len(set(caption.split()) ^ set(true)) <= 6  # only the attribute words change


def test_weights_bias_sampling_and_leave_other_families_uniform() -> None:
    world = WorldGenerator(seed=11)
    draws = [
        world.sample_attributes({"colour": {"red": 3.0, "blue": 1.0}, "shape": {"star": 1.0}})
        for _ in range(400)
    ]
    colours = [d.colour for d in draws]
    assert set(colours) == {"red", "blue"}
    assert colours.count("red") > 2 * colours.count("blue")
    assert {d.shape for d in draws} == {"star"}
    assert {d.scene for d in draws} == set(ATTRIBUTE_FAMILIES["scene"])


@pytest.mark.parametrize(
    "weights",
    [
        {"mood": {"happy": 1.0}},
        {"colour": {"teal": 1.0}},
        {"colour": {"red": 0.0}},
        {"colour": {"red": -1.0, "blue": 2.0}},
    ],
)
def test_bad_weights_raise_value_error(weights: dict) -> None:
    with pytest.raises(ValueError):
        WorldGenerator(seed=0).sample_attributes(weights)


def test_unknown_attribute_value_is_rejected() -> None:
    with pytest.raises(ValueError):
        Attributes("circle", "teal", "two", "beach", "solid")


def test_attribute_phrases_cover_every_value() -> None:
    phrases = attribute_phrases()
    assert set(phrases) == set(ATTRIBUTE_FAMILIES)
    for family, values in ATTRIBUTE_FAMILIES.items():
        assert len(phrases[family]) == len(values)
        assert len(set(phrases[family])) == len(values)
    assert "red" in phrases["colour"] and "circles" in phrases["shape"]
    assert "sandy beach" in phrases["scene"]


def test_rendering_is_fast_enough_for_training() -> None:
    world = WorldGenerator(seed=12, image_size=128)
    attrs = [world.sample_attributes() for _ in range(200)]
    started = time.perf_counter()
    for a in attrs:
        world.render(a)
    per_image = (time.perf_counter() - started) / len(attrs)
    assert per_image < 0.005  # ~0.4 ms when the machine is idle; generous for shared CPUs


def test_partial_captions_name_exactly_the_chosen_families() -> None:
    attrs = Attributes("star", "red", "two", "beach", "striped")
    assert partial_caption(attrs, ["shape"]) == "stars"
    assert partial_caption(attrs, ["colour"]) == "red shapes"
    assert partial_caption(attrs, ["scene"]) == "shapes on a sandy beach"
    assert partial_caption(attrs, ["count", "shape"]) == "two stars"
    assert partial_caption(attrs.replace("count", "one"), ["count", "shape"]) == "one star"
    rng = random.Random(4)
    for _ in range(200):
        style = random_caption_style(rng)
        families = rng.sample(list(ATTRIBUTE_FAMILIES), rng.randint(1, 3))
        caption = partial_caption(attrs, families, style)
        for family, value in attrs.as_dict().items():
            named = any(word in caption for word in value_words(family, value))
            # "two" and "2" never occur by accident; every other family word is distinctive too
            assert named == (family in families), (caption, family)


def test_partial_hard_negatives_change_one_named_family_each() -> None:
    attrs = Attributes("heart", "blue", "three", "forest", "dotted")
    negatives = partial_hard_negative_captions(attrs, ["shape", "colour"], random.Random(2))
    assert set(negatives) == {"shape", "colour"}
    for family, (caption, changed) in negatives.items():
        assert getattr(changed, family) != getattr(attrs, family)
        assert caption == partial_caption(changed, ["shape", "colour"])


def test_partial_caption_rejects_unknown_or_empty_families() -> None:
    attrs = Attributes("heart", "blue", "three", "forest", "dotted")
    with pytest.raises(ValueError, match="families"):
        partial_caption(attrs, [])
    with pytest.raises(ValueError, match="families"):
        partial_caption(attrs, ["mood"])
