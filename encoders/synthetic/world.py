"""A seeded synthetic world of captioned pictures: the demo model's training data and the
recommend benchmark's posts.

Every picture is made of five independent attribute families (shape, colour, count, scene,
texture), so captions such as "two striped red circles on a sandy beach" have real
compositional structure: a model must bind each word to the right visual property to tell the
true caption from one that differs in a single attribute.

Everything here is pure (PIL + numpy + :mod:`random`) and deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

from PIL import Image, ImageChops, ImageDraw

T = TypeVar("T")

# Values are ordered; the first synonym of each value is its canonical wording.
ATTRIBUTE_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle", "star", "heart", "diamond", "cross"),
    "colour": ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white"),
    "count": ("one", "two", "three", "four"),
    "scene": (
        "beach",
        "snowy field",
        "grass meadow",
        "night sky",
        "city street",
        "forest",
        "underwater",
    ),
    "texture": ("solid", "striped", "dotted", "outlined"),
}

# (singular, plural) nouns per shape.
_SHAPE_WORDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs"), ("round shape", "round shapes")),
    "square": (("square", "squares"), ("box", "boxes")),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"), ("star shape", "star shapes")),
    "heart": (("heart", "hearts"), ("love heart", "love hearts")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
}
_COLOUR_WORDS: Mapping[str, tuple[str, ...]] = {
    "red": ("red", "scarlet"),
    "orange": ("orange",),
    "yellow": ("yellow", "golden"),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "white": ("white",),
}
_COUNT_WORDS: Mapping[str, tuple[str, ...]] = {
    "one": ("one", "a single", "1"),
    "two": ("two", "a pair of", "2"),
    "three": ("three", "3"),
    "four": ("four", "4"),
}
# (preposition, noun phrase) per scene.
_SCENE_WORDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "beach": (("on", "a sandy beach"), ("at", "the beach"), ("by", "the seaside")),
    "snowy field": (("in", "a snowy field"), ("in", "the snow"), ("on", "snow-covered ground")),
    "grass meadow": (("in", "a grass meadow"), ("in", "a green meadow"), ("on", "the lawn")),
    "night sky": (("under", "a night sky"), ("against", "a starry sky"), ("in", "the night")),
    "city street": (("on", "a city street"), ("in", "a busy street"), ("in", "the city")),
    "forest": (("in", "a forest"), ("in", "the woods"), ("among", "tall trees")),
    "underwater": (("under", "the sea"), ("in", "deep water"), ("on", "the ocean floor")),
}
_TEXTURE_WORDS: Mapping[str, tuple[str, ...]] = {
    "solid": ("solid", "plain", "filled"),
    "striped": ("striped", "stripy"),
    "dotted": ("dotted", "polka-dot", "spotted"),
    "outlined": ("outlined", "hollow"),
}
_SYNONYM_COUNTS: Mapping[str, int] = {
    "shape": max(len(v) for v in _SHAPE_WORDS.values()),
    "colour": max(len(v) for v in _COLOUR_WORDS.values()),
    "count": max(len(v) for v in _COUNT_WORDS.values()),
    "scene": max(len(v) for v in _SCENE_WORDS.values()),
    "texture": max(len(v) for v in _TEXTURE_WORDS.values()),
}

# Word orders. {count} {colour} {texture} {shape} {prep} {scene}; {be} is "is"/"are".
_TEMPLATES: tuple[str, ...] = (
    "{count} {texture} {colour} {shape} {prep} {scene}",
    "{count} {colour} {texture} {shape} {prep} {scene}",
    "{scene} with {count} {texture} {colour} {shape}",
    "a photo of {count} {colour} {shape} {prep} {scene}, {texture}",
    "{prep} {scene}: {count} {texture} {colour} {shape}",
    "{count} {shape} in {colour}, {texture}, {prep} {scene}",
    "there {be} {count} {texture} {colour} {shape} {prep} {scene}",
    "a picture of {scene} showing {count} {colour} {texture} {shape}",
)

_RGB: Mapping[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 220, 35),
    "green": (40, 175, 60),
    "blue": (35, 80, 225),
    "purple": (135, 50, 195),
    "pink": (245, 125, 195),
    "white": (248, 248, 248),
}
_INK = (30, 30, 30)  # edges, stripes and dots: dark enough to contrast with every colour


@dataclass(frozen=True)
class Attributes:
    """The latent attributes of one post; each field holds a value of its family."""

    shape: str
    colour: str
    count: str
    scene: str
    texture: str

    def __post_init__(self) -> None:
        for family, value in self.as_dict().items():
            if value not in ATTRIBUTE_FAMILIES[family]:
                raise ValueError(
                    f"{value!r} is not a {family}; choose one of {ATTRIBUTE_FAMILIES[family]}"
                )

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, family: str, value: str) -> Attributes:
        """A copy with one family's value changed."""
        if family not in ATTRIBUTE_FAMILIES:
            raise ValueError(f"unknown family {family!r}; families: {tuple(ATTRIBUTE_FAMILIES)}")
        values = self.as_dict()
        values[family] = value
        return Attributes(**values)


@dataclass(frozen=True)
class Post:
    image: Image.Image
    caption: str
    attributes: Attributes


@dataclass(frozen=True)
class CaptionStyle:
    """Which template and which synonym of each family a caption uses.

    A style applied to two attribute sets yields captions differing only in the words of the
    families that differ, which is what makes a hard negative hard.
    """

    template: int = 0
    synonyms: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # in ATTRIBUTE_FAMILIES order


CANONICAL_STYLE = CaptionStyle()


def random_caption_style(rng: random.Random) -> CaptionStyle:
    synonyms = tuple(rng.randrange(_SYNONYM_COUNTS[f]) for f in ATTRIBUTE_FAMILIES)
    return CaptionStyle(rng.randrange(len(_TEMPLATES)), synonyms)  # type: ignore[arg-type]


def _pick(options: Sequence[T], index: int) -> T:
    return options[index % len(options)]  # values with fewer synonyms wrap around


def format_caption(attrs: Attributes, style: CaptionStyle = CANONICAL_STYLE) -> str:
    """The caption of ``attrs`` worded in ``style``."""
    syn = dict(zip(ATTRIBUTE_FAMILIES, style.synonyms, strict=True))
    plural = attrs.count != "one"
    singular_noun, plural_noun = _pick(_SHAPE_WORDS[attrs.shape], syn["shape"])
    prep, scene = _pick(_SCENE_WORDS[attrs.scene], syn["scene"])
    return _TEMPLATES[style.template].format(
        count=_pick(_COUNT_WORDS[attrs.count], syn["count"]),
        colour=_pick(_COLOUR_WORDS[attrs.colour], syn["colour"]),
        texture=_pick(_TEXTURE_WORDS[attrs.texture], syn["texture"]),
        shape=plural_noun if plural else singular_noun,
        prep=prep,
        scene=scene,
        be="are" if plural else "is",
    )


def canonical_caption(attrs: Attributes) -> str:
    """The one fixed wording, e.g. "two striped red circles on a sandy beach"."""
    return format_caption(attrs, CANONICAL_STYLE)


def hard_negative_attributes(attrs: Attributes, rng: random.Random) -> dict[str, Attributes]:
    """Per family, a copy of ``attrs`` whose value in exactly that family is changed."""
    negatives = {}
    for family, values in ATTRIBUTE_FAMILIES.items():
        current = getattr(attrs, family)
        negatives[family] = attrs.replace(family, rng.choice([v for v in values if v != current]))
    return negatives


def hard_negative_captions(
    attrs: Attributes, rng: random.Random, style: CaptionStyle = CANONICAL_STYLE
) -> dict[str, str]:
    """Per family, a caption (canonical by default) that is wrong in exactly that family."""
    return {
        family: format_caption(negative, style)
        for family, negative in hard_negative_attributes(attrs, rng).items()
    }


# Partial captions name only some families, the way people search ("red shapes", "a photo of
# stars", "shapes on a sandy beach"); a family left out is unconstrained.
_PARTIAL_PREFIXES: tuple[str, ...] = ("", "a photo of ", "a picture of ", "pictures of ")
_GENERIC_NOUNS: tuple[tuple[str, str], ...] = (
    ("shape", "shapes"),
    ("object", "objects"),
    ("thing", "things"),
)


def partial_caption(
    attrs: Attributes, families: Collection[str], style: CaptionStyle = CANONICAL_STYLE
) -> str:
    """A caption of ``attrs`` that names only ``families``, worded in ``style``.

    The canonical style words single families as "circles", "red shapes", "two shapes",
    "shapes on a sandy beach" and "striped shapes".
    """
    unknown = set(families) - set(ATTRIBUTE_FAMILIES)
    if unknown or not families:
        raise ValueError(
            f"families must be a non-empty subset of {tuple(ATTRIBUTE_FAMILIES)}, got {families}"
        )
    syn = dict(zip(ATTRIBUTE_FAMILIES, style.synonyms, strict=True))
    # Without a count the noun is a plural that covers any number ("circles").
    plural = "count" not in families or attrs.count != "one"
    if "shape" in families:
        nouns = _pick(_SHAPE_WORDS[attrs.shape], syn["shape"])
    else:
        nouns = _GENERIC_NOUNS[(style.template // 4 + syn["shape"]) % len(_GENERIC_NOUNS)]
    words = [_PARTIAL_PREFIXES[style.template % len(_PARTIAL_PREFIXES)].strip()]
    if "count" in families:
        words.append(_pick(_COUNT_WORDS[attrs.count], syn["count"]))
    if "texture" in families:
        words.append(_pick(_TEXTURE_WORDS[attrs.texture], syn["texture"]))
    if "colour" in families:
        words.append(_pick(_COLOUR_WORDS[attrs.colour], syn["colour"]))
    words.append(nouns[1] if plural else nouns[0])
    if "scene" in families:
        words.extend(_pick(_SCENE_WORDS[attrs.scene], syn["scene"]))
    return " ".join(w for w in words if w)


def partial_hard_negative_captions(
    attrs: Attributes,
    families: Collection[str],
    rng: random.Random,
    style: CaptionStyle = CANONICAL_STYLE,
) -> dict[str, tuple[str, Attributes]]:
    """Per named family, the partial caption (and attributes) wrong in exactly that family."""
    negatives = hard_negative_attributes(attrs, rng)
    return {f: (partial_caption(negatives[f], families, style), negatives[f]) for f in families}


def value_words(family: str, value: str) -> tuple[str, ...]:
    """Every wording captions may use for ``value`` of ``family`` (nouns in singular and plural)."""
    if value not in ATTRIBUTE_FAMILIES.get(family, ()):
        raise ValueError(f"{value!r} is not a value of family {family!r}")
    if family == "shape":
        return tuple(word for pair in _SHAPE_WORDS[value] for word in pair)
    if family == "scene":
        return tuple(noun for _, noun in _SCENE_WORDS[value])
    tables: Mapping[str, Mapping[str, tuple[str, ...]]] = {
        "colour": _COLOUR_WORDS,
        "count": _COUNT_WORDS,
        "texture": _TEXTURE_WORDS,
    }
    return tables[family][value]


def attribute_phrases() -> dict[str, list[str]]:
    """Per family, one short phrase per value (in value order): a zero-shot topic vocabulary."""
    return {
        "shape": [_SHAPE_WORDS[v][0][1] for v in ATTRIBUTE_FAMILIES["shape"]],
        "colour": [_COLOUR_WORDS[v][0] for v in ATTRIBUTE_FAMILIES["colour"]],
        "count": [_COUNT_WORDS[v][0] for v in ATTRIBUTE_FAMILIES["count"]],
        "scene": [_SCENE_WORDS[v][0][1].removeprefix("a ") for v in ATTRIBUTE_FAMILIES["scene"]],
        "texture": [_TEXTURE_WORDS[v][0] for v in ATTRIBUTE_FAMILIES["texture"]],
    }


# ---------------------------------------------------------------------------------------------
# Geometry: unit outlines in [-1, 1]^2 (y down), drawn as polygons so every shape renders alike.


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (
            radius * math.cos(phase + 2 * math.pi * i / n),
            radius * math.sin(phase + 2 * math.pi * i / n),
        )
        for i in range(n)
    ]


def _star() -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        r = 1.0 if i % 2 == 0 else 0.45
        a = -math.pi / 2 + math.pi * i / 5
        points.append((r * math.cos(a), r * math.sin(a) + 0.08))
    return points


def _heart() -> list[tuple[float, float]]:
    points = []
    for i in range(36):
        t = 2 * math.pi * i / 36
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 17.0, -y / 17.0 - 0.1))
    return points


def _cross(arm: float = 0.34, reach: float = 0.95) -> list[tuple[float, float]]:
    # One quarter of the plus sign's outline, rotated four times by 90 degrees.
    quarter = [(-arm, -reach), (arm, -reach), (arm, -arm)]
    points = []
    for turn in range(4):
        for x, y in quarter:
            for _ in range(turn):
                x, y = -y, x
            points.append((x, y))
    return points


_OUTLINES: Mapping[str, list[tuple[float, float]]] = {
    "circle": _regular(40, 0.9),
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(),
    "heart": _heart(),
    "diamond": [(0.0, -1.0), (0.68, 0.0), (0.0, 1.0), (-0.68, 0.0)],
    "cross": _cross(),
}

# Relative object diameter (fraction of the image side) by count: fewer objects are drawn larger.
_DIAMETER = {"one": (0.50, 0.62), "two": (0.34, 0.42), "three": (0.30, 0.36), "four": (0.30, 0.36)}
_CELLS = ((0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73))


def _lerp(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jitter(colour: Sequence[int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


class WorldGenerator:
    """Seeded source of attribute sets, pictures, captions and posts.

    Two generators with the same seed and image size produce identical sequences. The object
    keeps its own random state (no module globals), so independent generators don't interact.
    """

    def __init__(self, seed: int, image_size: int = 128) -> None:
        if image_size < 32:
            raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
        self.seed = seed
        self.image_size = image_size
        self._rng = random.Random(seed)
        self._patterns = self._make_patterns(image_size)

    # -- attributes and captions ---------------------------------------------------------------

    def sample_attributes(
        self, weights: Mapping[str, Mapping[str, float]] | None = None
    ) -> Attributes:
        """Draw one value per family, uniformly unless ``weights`` biases a family.

        ``weights[family]`` maps values to relative weights; values it leaves out get weight
        zero, so a creator's style ``{"colour": {"red": 3, "blue": 1}}`` only ever paints red or
        blue. Families absent from ``weights`` stay uniform.
        """
        weights = weights or {}
        unknown = set(weights) - set(ATTRIBUTE_FAMILIES)
        if unknown:
            raise ValueError(
                f"unknown families {sorted(unknown)}; families: {tuple(ATTRIBUTE_FAMILIES)}"
            )
        values = {}
        for family, options in ATTRIBUTE_FAMILIES.items():
            if family not in weights:
                values[family] = self._rng.choice(options)
                continue
            family_weights = weights[family]
            bad = set(family_weights) - set(options)
            if bad:
                raise ValueError(f"unknown {family} values {sorted(bad)}; choose from {options}")
            w = [float(family_weights.get(v, 0.0)) for v in options]
            if any(x < 0 or math.isnan(x) for x in w) or sum(w) <= 0:
                raise ValueError(f"{family} weights must be non-negative with a positive sum")
            values[family] = self._rng.choices(options, weights=w)[0]
        return Attributes(**values)

    def caption(self, attrs: Attributes, paraphrase: bool = True) -> str:
        """A caption of ``attrs``: a random template and synonyms, or the canonical wording."""
        if not paraphrase:
            return canonical_caption(attrs)
        return format_caption(attrs, random_caption_style(self._rng))

    def post(
        self,
        attrs: Attributes | None = None,
        weights: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Post:
        if attrs is None:
            attrs = self.sample_attributes(weights)
        image = self.render(attrs)
        return Post(image=image, caption=self.caption(attrs), attributes=attrs)

    def posts(self, n: int) -> list[Post]:
        return [self.post() for _ in range(n)]

    # -- rendering -------------------------------------------------------------------------------

    def render(self, attrs: Attributes) -> Image.Image:
        """An RGB picture of ``attrs``: the scene, then ``count`` textured objects on top."""
        image = self._render_scene(attrs.scene)
        draw = ImageDraw.Draw(image)
        s = self.image_size
        rng = self._rng
        n = ATTRIBUTE_FAMILIES["count"].index(attrs.count) + 1
        colour = _jitter(_RGB[attrs.colour], rng, 14)
        low, high = _DIAMETER[attrs.count]
        base = rng.uniform(low, high)
        if n == 1:
            centres = [(0.5 + rng.uniform(-0.12, 0.12), 0.5 + rng.uniform(-0.12, 0.12))]
            spread = 0.0
        else:
            centres = rng.sample(_CELLS, n)
            spread = 0.23 - base * 0.5  # keeps each object inside its grid cell
        for cx, cy in centres:
            diameter = base * rng.uniform(0.92, 1.0) * s
            jx = rng.uniform(-1, 1) * max(spread, 0.0) * s
            jy = rng.uniform(-1, 1) * max(spread, 0.0) * s
            polygon = [
                (cx * s + jx + x * diameter / 2, cy * s + jy + y * diameter / 2)
                for x, y in _OUTLINES[attrs.shape]
            ]
            self._draw_object(image, draw, polygon, colour, attrs.texture)
        return image

    def _draw_object(
        self,
        image: Image.Image,
        draw: ImageDraw.ImageDraw,
        polygon: list[tuple[float, float]],
        colour: tuple[int, int, int],
        texture: str,
    ) -> None:
        s = self.image_size
        edge = max(1, round(s / 64))
        if texture == "outlined":
            # A coloured ring between two thin dark edges, so the outline reads on any scene.
            cx = sum(x for x, _ in polygon) / len(polygon)
            cy = sum(y for _, y in polygon) / len(polygon)
            inner = [(cx + (x - cx) * 0.58, cy + (y - cy) * 0.58) for x, y in polygon]
            ring = Image.new("L", (s, s), 0)
            ring_draw = ImageDraw.Draw(ring)
            ring_draw.polygon(polygon, fill=255)
            ring_draw.polygon(inner, fill=0)
            image.paste(colour, (0, 0), ring)
            draw.polygon(polygon, outline=_INK, width=edge)
            draw.polygon(inner, outline=_INK, width=edge)
            return
        draw.polygon(polygon, fill=colour, outline=_INK, width=edge)
        if texture == "solid":
            return
        mask = Image.new("L", (s, s), 0)
        ImageDraw.Draw(mask).polygon(polygon, fill=255)
        pattern = self._rng.choice(self._patterns[texture])
        image.paste(_INK, (0, 0), ImageChops.multiply(mask, pattern))

    @staticmethod
    def _make_patterns(s: int) -> dict[str, list[Image.Image]]:
        """Full-frame stripe and dot masks (a few phases/orientations) reused by every render."""
        period = max(4, round(s / 11))
        stripes = []
        for orientation in ("horizontal", "vertical", "diagonal"):
            for phase in (0, period // 2):
                m = Image.new("L", (s, s), 0)
                d = ImageDraw.Draw(m)
                width = max(2, period // 2)
                for k in range(-2 * s, 2 * s, period):
                    o = k + phase
                    if orientation == "horizontal":
                        d.line([(0, o), (s, o)], fill=255, width=width)
                    elif orientation == "vertical":
                        d.line([(o, 0), (o, s)], fill=255, width=width)
                    else:
                        d.line([(o, 0), (o + s, s)], fill=255, width=width)
                stripes.append(m)
        dots = []
        radius = max(1.0, period * 0.28)
        for phase in (0, period // 2):
            m = Image.new("L", (s, s), 0)
            d = ImageDraw.Draw(m)
            for y in range(-period + phase, s + period, period):
                for x in range(-period + phase, s + period, period):
                    d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
            dots.append(m)
        return {"striped": stripes, "dotted": dots}

    def _gradient(
        self, image: Image.Image, top: Sequence[int], bottom: Sequence[int], y0: int, y1: int
    ) -> None:
        """Vertical gradient between rows y0 and y1, drawn in bands of 4 pixels for speed."""
        draw = ImageDraw.Draw(image)
        step = max(1, (y1 - y0) // 16)
        for y in range(y0, y1, step):
            t = (y - y0) / max(1, y1 - y0 - 1)
            draw.rectangle([0, y, self.image_size, y + step], fill=_lerp(top, bottom, t))

    def _render_scene(self, scene: str) -> Image.Image:
        s = self.image_size
        rng = self._rng
        image = Image.new("RGB", (s, s))
        draw = ImageDraw.Draw(image)
        horizon = int(s * rng.uniform(0.38, 0.52))
        if scene == "beach":
            self._gradient(image, _jitter((90, 160, 235), rng, 12), (185, 220, 245), 0, horizon)
            sea = horizon + int(s * 0.1)
            self._gradient(image, (30, 120, 170), (60, 160, 190), horizon, sea)
            self._gradient(image, _jitter((238, 214, 160), rng, 10), (215, 185, 130), sea, s)
            for _ in range(12):
                x, y = rng.uniform(0, s), rng.uniform(sea, s)
                draw.point((x, y), fill=(170, 140, 95))
        elif scene == "snowy field":
            self._gradient(image, _jitter((175, 185, 200), rng, 10), (215, 220, 228), 0, horizon)
            self._gradient(image, (250, 252, 255), (215, 225, 240), horizon, s)
            for _ in range(18):
                x, y = rng.uniform(0, s), rng.uniform(0, s)
                r = s / 90
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
        elif scene == "grass meadow":
            self._gradient(image, _jitter((95, 165, 240), rng, 12), (170, 210, 245), 0, horizon)
            self._gradient(image, (95, 175, 65), _jitter((50, 120, 35), rng, 10), horizon, s)
            for _ in range(26):
                x, y = rng.uniform(0, s), rng.uniform(horizon, s)
                draw.line([(x, y), (x + rng.uniform(-2, 2), y - s / 22)], fill=(35, 95, 25))
        elif scene == "night sky":
            self._gradient(image, _jitter((8, 10, 35), rng, 6), (35, 35, 80), 0, s)
            for _ in range(22):
                x, y = rng.uniform(0, s), rng.uniform(0, s)
                draw.point((x, y), fill=(255, 250, 210))
        elif scene == "city street":
            self._gradient(image, _jitter((150, 155, 165), rng, 10), (195, 195, 200), 0, horizon)
            x = -rng.uniform(0, s / 6)
            while x < s:
                w, h = rng.uniform(s / 8, s / 4), rng.uniform(s * 0.15, horizon * 0.9)
                draw.rectangle(
                    [x, horizon - h, x + w, horizon], fill=_jitter((80, 85, 100), rng, 15)
                )
                x += w + rng.uniform(0, s / 20)
            draw.rectangle([0, horizon, s, s], fill=(70, 70, 75))
            lane = horizon + (s - horizon) * 0.55
            for k in range(0, s, max(4, s // 6)):
                draw.rectangle([k, lane, k + s / 12, lane + s / 60], fill=(235, 235, 225))
        elif scene == "forest":
            self._gradient(image, _jitter((30, 75, 40), rng, 8), (20, 50, 25), 0, horizon)
            self._gradient(image, (70, 60, 35), (45, 40, 25), horizon, s)
            for _ in range(7):
                x = rng.uniform(0, s)
                w = rng.uniform(s / 30, s / 16)
                draw.rectangle([x, 0, x + w, horizon + s * 0.05], fill=(85, 60, 35))
            for _ in range(6):
                x, y = rng.uniform(0, s), rng.uniform(0, horizon * 0.6)
                r = rng.uniform(s / 10, s / 6)
                draw.ellipse([x - r, y - r, x + r, y + r * 0.7], fill=(20, 90, 35))
        elif scene == "underwater":
            self._gradient(image, _jitter((40, 175, 200), rng, 12), (10, 50, 105), 0, s)
            for _ in range(5):
                x = rng.uniform(0, s)
                points = [(x + math.sin(k * 0.9) * s / 40, s - k * s / 24) for k in range(6)]
                draw.line(points, fill=(30, 120, 60), width=max(1, s // 64))
        else:  # pragma: no cover - Attributes validates scene values
            raise ValueError(f"unknown scene {scene!r}")
        return image
