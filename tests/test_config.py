"""Layered configuration: precedence, validation errors, and docs that can't drift."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from mediarec.server import config
from mediarec.server.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "configuration.md"
EXAMPLE = REPO / "docs" / "mediarec.example.toml"


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mediarec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def every_settings_key() -> list[str]:
    """TOML keys straight from the dataclasses, independent of config.key_specs()."""
    found = []
    for section in dataclasses.fields(Settings):
        for item in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            found.append(f"{section.name}.{item.name}")
    return found


def test_no_layers_gives_the_declared_defaults() -> None:
    settings = load_settings({}, {}, None)
    assert settings == Settings()
    assert settings.model.id == "openclip:ViT-B-32/laion2b_s34b_b79k"
    assert settings.server.port == 50051
    assert settings.server.api_keys == ()
    assert settings.server.tls_cert is None


def test_file_then_env_then_flags_each_override_the_layer_before(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[server]\nport = 6000\nhost = '0.0.0.0'\n[media]\nmax_tags = 5\n")
    env = {"MEDIAREC_PORT": "7000", "MEDIAREC_MAX_TAGS": "6"}
    only_file = load_settings({}, {}, path)
    assert (only_file.server.port, only_file.server.host, only_file.media.max_tags) == (
        6000,
        "0.0.0.0",
        5,
    )
    file_and_env = load_settings({}, env, path)
    assert (file_and_env.server.port, file_and_env.media.max_tags) == (7000, 6)
    assert file_and_env.server.host == "0.0.0.0"  # untouched by env
    all_layers = load_settings({"port": "8000"}, env, path)
    assert all_layers.server.port == 8000
    assert all_layers.media.max_tags == 6


def test_overrides_accept_setting_names_toml_keys_and_native_values() -> None:
    settings = load_settings(
        {"data_dir": "/tmp/x", "server.workers": 3, "near_duplicate_cosine": 0.9, "port": None},
        {},
        None,
    )
    assert settings.storage.data_dir == Path("/tmp/x")
    assert settings.server.workers == 3
    assert settings.media.near_duplicate_cosine == pytest.approx(0.9)
    assert settings.server.port == 50051  # None means "flag not given"


def test_env_parses_lists_paths_and_ignores_unrelated_mediarec_vars(tmp_path: Path) -> None:
    env = {
        "MEDIAREC_API_KEYS": "alpha, beta,,",
        "MEDIAREC_HF_CACHE_DIR": str(tmp_path),
        "MEDIAREC_TEST_MEDIA": "/somewhere",
        "MEDIAREC_QDRANT_URL": "http://localhost:6333",
    }
    settings = load_settings({}, env, None)
    assert settings.server.api_keys == ("alpha", "beta")
    assert settings.model.hf_cache_dir == tmp_path
    assert settings.storage.qdrant_url == "http://localhost:6333"


def test_empty_optional_path_means_unset(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[model]\nhf_cache_dir = ""\n')
    assert load_settings({}, {"MEDIAREC_TLS_CERT": ""}, path).model.hf_cache_dir is None


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[srever]\nport = 1\n", "srever"),
        ("[server]\nport = '50051'\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ("[server]\napi_keys = 'k'\n", "server.api_keys"),
        ("[model]\nprecision = 'fp16'\n", "model.precision"),
        ("[model]\nprecision = 'int8'\ndevice = 'cuda'\n", "model.precision"),
        ("[model]\nprecision = 'int8'\nid = 'hf:org/clip'\n", "model.precision"),
        ("[model]\ndevice = 'gpu'\n", "model.device"),
        ("[model]\nbatch_size = 0\n", "model.batch_size"),
        ("[media]\nnear_duplicate_cosine = 1.5\n", "media.near_duplicate_cosine"),
        ("[media]\nvideo_frames = true\n", "media.video_frames"),
        ("[storage]\nqdrant_url = 'localhost:6333'\n", "storage.qdrant_url"),
        ("[topics]\nvocabulary = 'no-such-vocabulary'\n", "topics.vocabulary"),
        ("[search]\ndefault_k = 50\nmax_k = 20\n", "search.default_k"),
        ("[log]\nlevel = 'LOUD'\n", "log.level"),
        ("[server]\nhost = ' '\n", "server.host"),
    ],
)
def test_invalid_file_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {}, write_toml(tmp_path, toml))
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MEDIAREC_PORT": "abc"}, "MEDIAREC_PORT"),
        ({"MEDIAREC_NEAR_DUPLICATE_COSINE": "high"}, "MEDIAREC_NEAR_DUPLICATE_COSINE"),
        ({"MEDIAREC_WORKERS": "0"}, "server.workers"),
        ({"MEDIAREC_API_KEYS": "good,has space"}, "server.api_keys"),
    ],
)
def test_invalid_env_values_name_the_variable_or_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env, None)
    assert caught.value.key == key


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"prot": "1"}, {}, None)
    assert caught.value.key == "prot"


def test_missing_or_broken_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings({}, {}, tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, {}, write_toml(tmp_path, "[server\nport = 1"))


def test_tls_needs_both_existing_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    with pytest.raises(ConfigError) as caught:
        load_settings({"tls_cert": str(cert)}, {}, None)
    assert caught.value.key == "server.tls_key"
    with pytest.raises(ConfigError) as caught:
        load_settings({"tls_cert": str(cert), "tls_key": str(key)}, {}, None)
    assert caught.value.key == "server.tls_cert"
    cert.write_text("cert")
    key.write_text("key")
    settings = load_settings({"tls_cert": str(cert), "tls_key": str(key)}, {}, None)
    assert (settings.server.tls_cert, settings.server.tls_key) == (cert, key)


def test_topic_vocabulary_may_be_a_file(tmp_path: Path) -> None:
    vocabulary = tmp_path / "topics.txt"
    vocabulary.write_text("hiking\ncats\n")
    assert load_settings({"topics": str(vocabulary)}, {}, None).topics.vocabulary == str(
        vocabulary
    )


def test_secrets_are_kept_out_of_repr_and_flags() -> None:
    settings = load_settings({}, {"MEDIAREC_API_KEYS": "s3cret-key"}, None)
    assert "s3cret-key" not in repr(settings)
    secret_keys = {spec.toml_key for spec in config.key_specs() if spec.secret}
    assert all(spec.flag is None for spec in config.key_specs() if spec.secret)
    assert secret_keys == {"server.api_keys", "server.admin_api_keys", "storage.qdrant_api_key"}


def test_argparse_flags_override_env_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[model]\nid = 'mediarec-demo'\nbatch_size = 4\n")
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--batch-size", "16", "--log-level", "DEBUG"])
    env = {"MEDIAREC_CONFIG": str(path), "MEDIAREC_BATCH_SIZE": "8", "MEDIAREC_PORT": "0"}
    settings = config.settings_from_args(args, env)
    assert settings.model.id == "mediarec-demo"  # from the file named by MEDIAREC_CONFIG
    assert settings.model.batch_size == 16  # the flag beats env (8) and file (4)
    assert settings.server.port == 0  # from env
    assert settings.log.level == "DEBUG"


def test_argparse_flags_not_given_do_not_override() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, sections=["server"])
    args = parser.parse_args(["--config", "x.toml"])
    assert config.overrides_from_args(args) == {}
    assert config.config_path(args, {"MEDIAREC_CONFIG": "y.toml"}) == Path("x.toml")
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-id", "mediarec-demo"])  # not in the chosen sections


def test_example_file_parses_and_equals_the_defaults() -> None:
    assert load_settings({}, {}, EXAMPLE) == Settings()
    text = EXAMPLE.read_text(encoding="utf-8")
    for toml_key in every_settings_key():
        section, name = toml_key.split(".")
        assert re.search(rf"^{name} = ", text, re.MULTILINE), toml_key
    assert text == config.render_example_toml(), (
        "regenerate: python -m mediarec.server.config --example"
    )


def test_reference_lists_every_settings_field_with_env_and_flag() -> None:
    text = DOCS.read_text(encoding="utf-8")
    specs = {spec.toml_key: spec for spec in config.key_specs()}
    assert sorted(specs) == sorted(every_settings_key())
    for toml_key in every_settings_key():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{toml_key}` |"))
        assert f"`{specs[toml_key].env}`" in row
        if specs[toml_key].flag:
            assert f"`{specs[toml_key].flag}`" in row


def test_reference_table_in_docs_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- BEGIN GENERATED KEYS -->\n", 1)[1].split("<!-- END GENERATED KEYS")[0]
    regenerate = "regenerate: python -m mediarec.server.config --reference"
    assert block == config.render_reference_table(), regenerate


def test_env_and_flag_names_are_unique() -> None:
    specs = config.key_specs()
    assert len({s.env for s in specs}) == len(specs)
    flags = [s.flag for s in specs if s.flag]
    assert len(set(flags)) == len(flags)


def test_defaults_agree_with_the_encoder_package() -> None:
    from mediarec.encoders.images import DEFAULT_MAX_PIXELS
    from mediarec.encoders.registry import DEFAULT_MODEL_ID

    assert Settings().model.id == DEFAULT_MODEL_ID
    assert Settings().media.max_image_pixels == DEFAULT_MAX_PIXELS


def test_int8_precision_reaches_the_encoder_with_a_cache_in_the_data_dir(tmp_path: Path) -> None:
    from mediarec.server.runtime import encoder_options

    toml = f"[model]\nprecision = 'int8'\n[storage]\ndata_dir = '{tmp_path / 'data'}'\n"
    settings = load_settings({}, {}, write_toml(tmp_path, toml))
    options = encoder_options(settings)
    assert options.precision == "int8"
    assert options.onnx_cache_dir == tmp_path / "data" / "onnx"


def test_every_recommender_setting_has_a_configuration_key() -> None:
    import dataclasses

    from mediarec.server.recommend.settings import RecommendSettings

    knobs = {f.name for f in dataclasses.fields(RecommendSettings)}
    keys = {f.name for f in dataclasses.fields(config.RecommendConfig)}
    # Set from other keys: the blend weights' file and the learned ranker's default path.
    derived = {"ranker_path", "learned_ranker_path"}
    assert sorted(knobs - keys - derived) == []
