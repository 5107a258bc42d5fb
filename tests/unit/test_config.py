import pytest

from app.config import ConfigError, load_settings, save_sources
from app.models import SourceConfig, SourceType


def test_defaults_and_portable_home(tmp_path):
    s = load_settings(home=tmp_path, env={})
    assert s.documents_table == "processed_documents"
    assert s.chunks_table == "document_chunks"
    assert s.index_uri == str(tmp_path / "data" / "index")
    assert s.state_dir == tmp_path / "data" / "state"
    assert s.paths.log_dir == tmp_path / "logs"
    assert s.checksum_enabled is True


def test_env_overrides_file_overrides_default(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        'sync_interval = 60\nmax_retries = 7\ndocuments_table = "docs_from_file"\n')
    s = load_settings(home=tmp_path, env={"SYNC_INTERVAL": "120", "LANCEDB_URI": "/x/idx",
                                          "CHECKSUM_ENABLED": "false", "SYNC_STATE_DIR": "/s"})
    assert s.sync_interval == 120  # env beats file
    assert s.max_retries == 7  # file beats default
    assert s.documents_table == "docs_from_file"
    assert s.index_uri == "/x/idx"
    assert s.checksum_enabled is False
    assert str(s.state_dir) == "/s"


@pytest.mark.parametrize("var,value,needle", [
    ("SYNC_INTERVAL", "soon", "whole number from 5"),
    ("MAX_CONCURRENT_PROCESSING", "0", "from 1 to 64"),
    ("CHECKSUM_ENABLED", "maybe", "true/false"),
    ("LANCEDB_SYNC_LOG_LEVEL", "loud", "debug, info, warning, error"),
    ("CHUNK_SIZE_MB", "1", "from 5 to 5000"),
])
def test_bad_env_value_names_variable_and_accepted_values(tmp_path, var, value, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(home=tmp_path, env={var: value})
    assert var in str(err.value)
    assert needle in str(err.value)


def test_bad_toml_and_unknown_keys(tmp_path):
    (tmp_path / "config").mkdir()
    cfg = tmp_path / "config" / "config.toml"
    cfg.write_text("sync_interval = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(home=tmp_path, env={})
    cfg.write_text("sync_intervall = 5")
    with pytest.raises(ConfigError, match="unknown settings: sync_intervall"):
        load_settings(home=tmp_path, env={})


def test_sources_round_trip_keeps_other_settings(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("max_retries = 5\n")
    s = load_settings(home=tmp_path, env={})
    src = SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs",
                       {"watch_paths": ["/a", "/b"], "file_patterns": ["*.md"]}, poll_interval=30)
    save_sources(s, (src,))
    again = load_settings(home=tmp_path, env={})
    assert again.max_retries == 5
    assert again.sources == (src,)


def test_overlap_must_be_smaller_than_chunk(tmp_path):
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_settings(home=tmp_path, env={"LANCEDB_SYNC_CHUNK_CHARS": "200",
                                          "LANCEDB_SYNC_CHUNK_OVERLAP": "200"})


def test_configuration_doc_names_every_setting():
    from pathlib import Path

    from app.config import FIELDS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for f in FIELDS:
        assert f"`{f.name}`" in doc, f.name
        if f.env:
            assert f"`{f.env}`" in doc, f.env


@pytest.mark.parametrize("value", ["wordllama", "wordllama:64", "wordllama:128",
                                   "wordllama:256", "ollama:nomic-embed-text",
                                   "openai:text-embedding-3-small"])
def test_embedder_forms_accepted(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LANCEDB_SYNC_EMBEDDER", value)
    assert load_settings(home=tmp_path).embedder == value


@pytest.mark.parametrize("value", ["foo", "wordllama:512", "wordllama:", "ollama:", "openai",
                                   "huggingface:bert"])
def test_embedder_anything_else_is_a_config_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LANCEDB_SYNC_EMBEDDER", value)
    with pytest.raises(ConfigError) as err:
        load_settings(home=tmp_path)
    message = str(err.value)
    assert "LANCEDB_SYNC_EMBEDDER" in message
    for form in ("wordllama, wordllama:DIM", "ollama:MODEL", "openai:MODEL"):
        assert form in message
