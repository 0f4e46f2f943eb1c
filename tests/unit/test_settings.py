"""Settings (ingest/settings.py): flags > environment > config file > defaults, typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import settings
from ingest.errors import ConfigError, UsageError

SERVER_FLAGS = dict.fromkeys(
    ("rubrix_url", "api_key", "workspace", "batch_size", "concurrency", "retry_for", "timeout")
)


def _config(tmp_path: Path, text: str) -> settings.Config:
    path = tmp_path / "ingest.toml"
    path.write_text(text)
    return settings.load(path)


def test_defaults_when_nothing_is_set():
    assert settings.server(SERVER_FLAGS, settings.Config(), environ={}) is None
    assert settings.store_dir(None, settings.Config(), environ={}) == Path("rubrix-store")
    server = settings.server({**SERVER_FLAGS, "rubrix_url": "http://x"}, settings.Config(), environ={})
    assert server == settings.ServerSettings(
        url="http://x", batch_size=500, concurrency=4, retry_for=120.0, timeout=60.0
    )


def test_url_in_config_and_in_environment_is_no_type_error_and_the_environment_wins(tmp_path: Path):
    # issue 12: [rubrix] url with RUBRIX_API_URL set was "got multiple values for keyword argument 'url'"
    config = _config(tmp_path, '[rubrix]\nurl = "http://config:6900"\nworkspace = "from-config"\n')
    env = {"RUBRIX_API_URL": "http://env:6900"}
    server = settings.server(SERVER_FLAGS, config, environ=env)
    assert server is not None and (server.url, server.workspace) == ("http://env:6900", "from-config")
    flagged = settings.server({**SERVER_FLAGS, "rubrix_url": "http://flag:6900"}, config, environ=env)
    assert flagged is not None and flagged.url == "http://flag:6900"
    assert settings.server(SERVER_FLAGS, config, environ={}).url == "http://config:6900"  # type: ignore[union-attr]


def test_precedence_flags_environment_config_defaults_for_every_server_setting(tmp_path: Path):
    config = _config(
        tmp_path,
        '[rubrix]\nurl = "http://c"\napi_key = "c-key"\nworkspace = "c-ws"\nbatch_size = 7\n'
        "concurrency = 3\nretry_for = 5\ntimeout = 2.5\n",
    )
    env = {"ARGILLA_API_KEY": "e-key", "RUBRIX_WORKSPACE": "e-ws"}
    flags = {**SERVER_FLAGS, "workspace": "f-ws", "concurrency": 9}
    server = settings.server(flags, config, environ=env)
    assert server == settings.ServerSettings(
        url="http://c", api_key="e-key", workspace="f-ws", batch_size=7, concurrency=9, retry_for=5.0,
        timeout=2.5,
    )  # fmt: skip
    assert isinstance(server.retry_for, float)


def test_the_first_environment_variable_set_wins_and_empty_ones_do_not_count():
    env = {"RUBRIX_API_URL": "", "ARGILLA_API_URL": "http://argilla"}
    assert settings.from_env("rubrix_url", env) == "http://argilla"
    env = {"RUBRIX_API_URL": "http://rubrix", "ARGILLA_API_URL": "http://argilla"}
    assert settings.from_env("rubrix_url", env) == "http://rubrix"


def test_store_and_config_path_from_flag_environment_config(tmp_path: Path):
    config = _config(tmp_path, 'store = "from-config"\n')
    # a config's paths are relative to the config file
    assert settings.store_dir(None, config, environ={}) == tmp_path / "from-config"
    assert settings.store_dir(None, config, environ={"RUBRIX_INGEST_STORE": "env"}) == Path("env")
    assert settings.store_dir(Path("flag"), config, environ={"RUBRIX_INGEST_STORE": "env"}) == Path("flag")
    env = {"RUBRIX_INGEST_CONFIG": str(tmp_path / "ingest.toml")}
    assert settings.load_config(None, environ=env).store == str(tmp_path / "from-config")
    assert settings.load_config(None, environ={}).path is None


@pytest.mark.parametrize(
    "text, message",
    [
        # issue 12: a string where a number belongs was a traceback and exit 1
        ('[rubrix]\nconcurrency = "4"\n', "[rubrix] concurrency must be an integer, not a string ('4')"),
        ("[rubrix]\nconcurrency = 4.5\n", "[rubrix] concurrency must be an integer, not a number (4.5)"),
        ("[rubrix]\nbatch_size = true\n", "[rubrix] batch_size must be an integer, not a boolean"),
        ("[rubrix]\nconcurrency = 0\n", "[rubrix] concurrency must be at least 1"),
        ("[rubrix]\nbatch_size = 5001\n", "[rubrix] batch_size must be at most 5000"),
        ('[rubrix]\ntimeout = "60"\n', "[rubrix] timeout must be a number, not a string"),
        ("[rubrix]\nurl = 6900\n", "[rubrix] url must be a string, not an integer (6900)"),
        ("store = 1\n", "store must be a string"),
        ("[rubrix]\nuri = 'x'\n", "[rubrix]: unknown key 'uri'"),
        ("rubrix = 1\n", "[rubrix] must be a table"),
        ("[endpoints.'/a/']\ntags = { model = 1 }\n", "tags must be a table of strings"),
        ("[endpoints.'/a/']\nmetadata = 'method'\n", "metadata must be a list of field names"),
        ("[endpoints.'/a/']\nworkspace = 1\n", "workspace must be a string"),
    ],
)
def test_a_wrong_type_or_key_in_the_config_is_a_config_error_exit_2(tmp_path: Path, text, message):
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, text)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_dataset_and_mapper_flags_apply_to_one_endpoint_over_its_config(tmp_path: Path):
    config = _config(tmp_path, "[endpoints.'/a/']\ndataset = 'a'\ntags = { t = 'x' }\n")
    routes = settings.routes(config, ("/a/",), None, "text2text")
    assert (routes["/a/"].dataset, routes["/a/"].mapper, routes["/a/"].tags) == ("a", "text2text", {"t": "x"})
    with pytest.raises(UsageError, match="give exactly one --endpoint"):
        settings.routes(config, (), "b", None)
    with pytest.raises(UsageError, match="invalid dataset name"):
        settings.routes(config, ("/a/",), "Bad", None)
