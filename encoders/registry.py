"""Model specs kept as data, and the one parser that turns a model identifier into a spec.

Identifier forms (see README "Model identifiers"):

==============================  ==============================================================
``mediarec-demo``               the bundled demo model (offline, trained by this repository)
``openclip:ARCH/TAG``           open_clip architecture with a pretrained tag (Hugging Face
                                Hub, downloaded once and cached), e.g.
                                ``openclip:ViT-B-32/laion2b_s34b_b79k``
``openclip:ARCH@PATH``          open_clip architecture with a local checkpoint file
                                (``.pt``, ``.pth``, ``.bin``, ``.safetensors``)
``openclip-dir:PATH``           an open_clip folder: ``open_clip_config.json`` + weights
``hf:ORG/REPO``                 transformers ``CLIPModel`` from the Hub (cached), e.g.
                                ``hf:openai/clip-vit-base-patch32``
``hf-dir:PATH``                 transformers ``CLIPModel`` saved with ``save_pretrained``
``external:DIM``                no model: the client sends precomputed DIM-d vectors
``PATH``                        a local folder, detected as ``openclip-dir`` (has
                                ``open_clip_config.json``) or ``hf-dir`` (has ``config.json``)
==============================  ==============================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from mediarec.encoders.base import ModelIdError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DEMO_MODEL_ID = "mediarec-demo"
DEFAULT_MODEL_ID = "openclip:ViT-B-32/laion2b_s34b_b79k"
BUNDLED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

VALID_FORMS = (
    "'mediarec-demo', 'openclip:ARCH/TAG', 'openclip:ARCH@CHECKPOINT_FILE', "
    "'openclip-dir:DIR', 'hf:ORG/REPO', 'hf-dir:DIR', 'external:DIM', or a local model folder"
)


class Backend(StrEnum):
    OPENCLIP = "openclip"
    HF = "hf"
    EXTERNAL = "external"


class WeightsKind(StrEnum):
    PRETRAINED_TAG = "pretrained_tag"  # open_clip tag resolved through its own registry and the Hub
    HF_REPO = "hf_repo"  # a Hugging Face Hub repository id
    LOCAL_FILE = "local_file"  # a checkpoint file for a named architecture
    LOCAL_DIR = "local_dir"  # a self-describing folder (config + weights)
    NONE = "none"  # vectors-only


@dataclass(frozen=True)
class PreprocessSpec:
    """How pixels become model input. It belongs to the weights, never to the caller."""

    size: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class WeightsSource:
    kind: WeightsKind
    location: str = ""  # tag, repo id or path, depending on ``kind``


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build and describe one encoder."""

    model_id: str  # canonical identifier; also names the vector collection
    backend: Backend
    architecture: str
    weights: WeightsSource
    dim: int | None  # None when only the loaded checkpoint can tell
    preprocess: PreprocessSpec | None = field(default=None)  # None: read from the checkpoint
    card: str | None = None  # file name under model_cards/ for registry entries
    licence: str = ""
    # The visual cosine above which two items of this model are reposts of one picture, where
    # its card measured one; None: the server's setting (0.95, typical of real CLIP models).
    near_duplicate_cosine: float | None = None
    # The topic vocabulary that fits the pictures this model is used on (what the server's
    # ``topics = auto`` labels with); None: none does, so auto labels nothing.
    topic_vocabulary: str | None = "everyday"


REGISTRY: dict[str, ModelSpec] = {
    DEFAULT_MODEL_ID: ModelSpec(
        model_id=DEFAULT_MODEL_ID,
        backend=Backend.OPENCLIP,
        architecture="ViT-B-32",
        weights=WeightsSource(WeightsKind.PRETRAINED_TAG, "laion2b_s34b_b79k"),
        dim=512,
        preprocess=PreprocessSpec(size=224),
        card="openclip-vit-b-32-laion2b.md",
        licence="MIT",
    ),
    "hf:openai/clip-vit-base-patch32": ModelSpec(
        model_id="hf:openai/clip-vit-base-patch32",
        backend=Backend.HF,
        architecture="CLIPModel",
        weights=WeightsSource(WeightsKind.HF_REPO, "openai/clip-vit-base-patch32"),
        dim=512,
        preprocess=PreprocessSpec(size=224),
        card="hf-openai-clip-vit-base-patch32.md",
        licence="MIT",
    ),
    DEMO_MODEL_ID: ModelSpec(
        model_id=DEMO_MODEL_ID,
        backend=Backend.OPENCLIP,
        architecture="mediarec-demo",
        weights=WeightsSource(WeightsKind.LOCAL_DIR, str(BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID)),
        dim=128,
        preprocess=None,  # read from open_clip_config.json next to the weights
        card="mediarec-demo.md",
        near_duplicate_cosine=0.985,  # model card: reposts 0.992-0.998, distinct posts lower
        # Its world's attributes fit only its own synthetic pictures, and its vectors cannot
        # tell a real photo from one of them (model card), so auto labels nothing; the demo
        # asks for "demo-world" itself.
        topic_vocabulary=None,
        licence="Apache-2.0",
    ),
}

# Vectors-only deployments are a family rather than one entry: ``external:DIM``.
EXTERNAL_CARD = "external.md"

_ARCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*$")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
MAX_EXTERNAL_DIM = 8192


# The near-duplicate cosine of a model whose card measured none: typical of real CLIP models.
DEFAULT_NEAR_DUPLICATE_COSINE = 0.95


def topic_vocabulary_of(model_id: str) -> str | None:
    """The vocabulary that fits this model's pictures (None: none does); a model outside the
    registry is taken for a real CLIP model."""
    try:
        return parse_model_id(model_id).topic_vocabulary
    except ModelIdError:
        return ModelSpec.topic_vocabulary


def near_duplicate_cosine_of(model_id: str) -> float:
    """The visual cosine above which two items of this model are one picture: its registry
    value where its card measured one, else the value typical of real CLIP models."""
    try:
        measured = parse_model_id(model_id).near_duplicate_cosine
    except ModelIdError:
        measured = None
    return measured if measured is not None else DEFAULT_NEAR_DUPLICATE_COSINE


def _bad(identifier: str, why: str) -> ModelIdError:
    return ModelIdError(f"Invalid model id {identifier!r}: {why}; valid forms are {VALID_FORMS}.")


def parse_model_id(identifier: str) -> ModelSpec:
    """Turn a model identifier into a :class:`ModelSpec`; raise :class:`ModelIdError` otherwise.

    Parsing never touches the network. Local paths are checked for existence so that a typo
    fails here, at configuration time, instead of at first use.
    """
    text = (identifier or "").strip()
    if not text:
        raise _bad(identifier, "it is empty")
    if text in REGISTRY:
        return REGISTRY[text]
    scheme, sep, rest = text.partition(":")
    if not sep or "/" in scheme or scheme.startswith((".", "~")):
        return _parse_local_dir(text, identifier)
    parsers = {
        "openclip": _parse_openclip,
        "openclip-dir": lambda r, i: _openclip_dir_spec(Path(r).expanduser(), i),
        "hf": _parse_hf,
        "hf-dir": lambda r, i: _hf_dir_spec(Path(r).expanduser(), i),
        "external": _parse_external,
    }
    parser = parsers.get(scheme)
    if parser is None:
        raise _bad(identifier, f"unknown scheme {scheme!r}")
    return parser(rest, identifier)


def _parse_openclip(rest: str, identifier: str) -> ModelSpec:
    if "@" in rest:
        arch, _, path_text = rest.partition("@")
        path = Path(path_text).expanduser()
        if not _ARCH_RE.match(arch):
            raise _bad(identifier, "the architecture name is missing or malformed")
        if path.suffix not in _CHECKPOINT_SUFFIXES:
            raise _bad(identifier, f"a checkpoint file must end in one of {_CHECKPOINT_SUFFIXES}")
        if not path.is_file():
            raise _bad(identifier, f"checkpoint file {str(path)!r} does not exist")
        return ModelSpec(
            model_id=f"openclip:{arch}@{path.resolve()}",
            backend=Backend.OPENCLIP,
            architecture=arch,
            weights=WeightsSource(WeightsKind.LOCAL_FILE, str(path.resolve())),
            dim=None,
        )
    arch, slash, tag = rest.partition("/")
    if not slash or not _ARCH_RE.match(arch) or not _ARCH_RE.match(tag):
        raise _bad(identifier, "expected 'openclip:ARCH/TAG' or 'openclip:ARCH@CHECKPOINT_FILE'")
    canonical = f"openclip:{arch}/{tag}"
    if canonical in REGISTRY:
        return REGISTRY[canonical]
    return ModelSpec(
        model_id=canonical,
        backend=Backend.OPENCLIP,
        architecture=arch,
        weights=WeightsSource(WeightsKind.PRETRAINED_TAG, tag),
        dim=None,
    )


def _parse_hf(rest: str, identifier: str) -> ModelSpec:
    if not _HF_REPO_RE.match(rest):
        raise _bad(identifier, "expected a Hub repository id 'hf:ORG/REPO'")
    canonical = f"hf:{rest}"
    if canonical in REGISTRY:
        return REGISTRY[canonical]
    return ModelSpec(
        model_id=canonical,
        backend=Backend.HF,
        architecture="CLIPModel",
        weights=WeightsSource(WeightsKind.HF_REPO, rest),
        dim=None,
    )


def _parse_external(rest: str, identifier: str) -> ModelSpec:
    if not rest.isdigit() or not 1 <= int(rest) <= MAX_EXTERNAL_DIM:
        raise _bad(identifier, f"'external:DIM' needs DIM between 1 and {MAX_EXTERNAL_DIM}")
    dim = int(rest)
    return ModelSpec(
        model_id=f"external:{dim}",
        backend=Backend.EXTERNAL,
        architecture="none",
        weights=WeightsSource(WeightsKind.NONE),
        dim=dim,
        card=EXTERNAL_CARD,
    )


def _parse_local_dir(text: str, identifier: str) -> ModelSpec:
    path = Path(text).expanduser()
    if path.is_file():
        raise _bad(identifier, "a checkpoint file needs its architecture: 'openclip:ARCH@FILE'")
    if not path.is_dir():
        raise _bad(identifier, "it is neither a registered model nor an existing folder")
    if (path / "open_clip_config.json").is_file():
        return _openclip_dir_spec(path, identifier)
    if (path / "config.json").is_file():
        return _hf_dir_spec(path, identifier)
    raise _bad(identifier, "the folder has neither open_clip_config.json nor config.json")


def _openclip_dir_spec(path: Path, identifier: str) -> ModelSpec:
    if not (path / "open_clip_config.json").is_file():
        raise _bad(identifier, f"{str(path)!r} has no open_clip_config.json")
    resolved = path.resolve()
    bundled = REGISTRY[DEMO_MODEL_ID]
    if str(resolved) == bundled.weights.location:
        return bundled
    return ModelSpec(
        model_id=f"openclip-dir:{resolved}",
        backend=Backend.OPENCLIP,
        architecture=resolved.name,
        weights=WeightsSource(WeightsKind.LOCAL_DIR, str(resolved)),
        dim=None,
    )


def _hf_dir_spec(path: Path, identifier: str) -> ModelSpec:
    if not (path / "config.json").is_file():
        raise _bad(identifier, f"{str(path)!r} has no config.json")
    resolved = path.resolve()
    return ModelSpec(
        model_id=f"hf-dir:{resolved}",
        backend=Backend.HF,
        architecture="CLIPModel",
        weights=WeightsSource(WeightsKind.LOCAL_DIR, str(resolved)),
        dim=None,
    )


def with_loaded_facts(spec: ModelSpec, dim: int, preprocess: PreprocessSpec | None) -> ModelSpec:
    """The spec completed with what only the loaded checkpoint knows."""
    return replace(spec, dim=dim, preprocess=preprocess or spec.preprocess)
