"""Settings: defaults, file, environment, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.core.errors import ConfigError
from medops.core.settings.config import Settings, describe, load_settings
from medops.core.settings.paths import Locations


def test_defaults_are_the_reference_values(locations: Locations) -> None:
    loaded = load_settings(locations, env={})
    s = loaded.settings
    assert (s.groq_rpm, s.groq_rpd, s.groq_concurrent) == (30, 7_000, 10)
    assert (s.max_cases_in_memory, s.case_memory_mb, s.agent_context_pool_size) == (1_000, 10, 100)
    assert (s.db_connection_pool_size, s.query_cache_size, s.query_cache_ttl) == (10, 1_000, 3_600)
    assert (s.http_max_connections, s.http_max_per_host, s.max_file_size_mb) == (100, 10, 10)
    assert set(loaded.sources.values()) == {"default"}
    assert loaded.config_file is None


def test_default_models_carry_groq_free_tier_limits() -> None:
    limits = Settings().model_limits("llama-3.1-8b-instant")
    assert (limits.rpm, limits.rpd, limits.tpm, limits.tpd) == (30, 14_400, 6_000, 500_000)


def test_file_overrides_defaults_and_env_overrides_file(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text("io_threads = 12\ncpu_threads = 3\n")
    loaded = load_settings(locations, config, env={"MEDOPS_IO_THREADS": "20"})
    assert loaded.settings.io_threads == 20
    assert loaded.sources["io_threads"] == "env MEDOPS_IO_THREADS"
    assert loaded.settings.cpu_threads == 3
    assert loaded.sources["cpu_threads"] == f"file {config}"


def test_config_file_in_the_config_folder_is_found(locations: Locations) -> None:
    locations.config_dir.mkdir(parents=True)
    locations.config_file.write_text("queue_limit = 50\n")
    loaded = load_settings(locations, env={})
    assert loaded.settings.queue_limit == 50
    assert loaded.config_file == locations.config_file


def test_medops_config_variable_names_the_file(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text("queue_limit = 7\n")
    assert load_settings(locations, env={"MEDOPS_CONFIG": str(config)}).settings.queue_limit == 7


def test_out_of_range_value_names_key_value_range_and_source(locations: Locations) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(locations, env={"MEDOPS_IO_THREADS": "0"})
    message = str(caught.value)
    assert "io_threads" in message and "0" in message
    assert "1 to 4096" in message and "env MEDOPS_IO_THREADS" in message


def test_wrong_type_in_file_is_refused_with_its_source(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text('groq_concurrent = "many"\n')
    with pytest.raises(ConfigError, match=r"groq_concurrent = 'many' \(from file .*\) is not a whole number"):
        load_settings(locations, config, env={})


def test_unknown_key_is_refused(locations: Locations) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'grok_rpm'"):
        load_settings(locations, env={"MEDOPS_GROK_RPM": "5"})


def test_the_store_password_variable_is_not_a_setting_and_is_never_shown(locations: Locations) -> None:
    # README: `export MEDOPS_STORE_PASSWORD=...`; every command refused it as an unknown setting.
    loaded = load_settings(locations, env={"MEDOPS_STORE_URL": "redis://127.0.0.1:6379/0",
                                           "MEDOPS_STORE_PASSWORD": "hunter2-not-shown"})
    assert loaded.settings.store_url == "redis://127.0.0.1:6379/0"
    assert "hunter2-not-shown" not in str(describe(loaded))


def test_broken_toml_is_refused(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text("io_threads = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(locations, config, env={})


def test_missing_explicit_file_is_refused(locations: Locations, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(locations, tmp_path / "nope.toml", env={})


def test_model_table_inherits_reference_request_limits(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text('default_model = "tiny"\ngroq_rpm = 12\n[models.tiny]\ntpm = 1000\ntpd = 9000\n')
    settings = load_settings(locations, config, env={}).settings
    assert set(settings.models) == {"tiny"}
    limits = settings.model_limits("tiny")
    assert (limits.rpm, limits.rpd, limits.tpm, limits.tpd) == (12, 7_000, 1_000, 9_000)


def test_builtin_model_keeps_its_own_figures_for_fields_the_file_omits(locations: Locations,
                                                                        tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text('[models."llama-3.1-8b-instant"]\nrpm = 20\ntpm = 6000\ntpd = 500000\n'
                      '[models."openai/gpt-oss-20b"]\ntpd = 150000\n')
    settings = load_settings(locations, config, env={}).settings
    instant = settings.model_limits("llama-3.1-8b-instant")
    assert (instant.rpm, instant.rpd, instant.tpm, instant.tpd) == (20, 14_400, 6_000, 500_000)
    oss = settings.model_limits("openai/gpt-oss-20b")
    assert (oss.rpm, oss.rpd, oss.tpm, oss.tpd, oss.reasoning) == (30, 1_000, 8_000, 150_000, True)


def test_io_threads_below_the_tuners_floor_is_refused_naming_both(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text("io_threads = 1\nio_threads_min = 4\n")
    with pytest.raises(ConfigError, match=r"io_threads = 1 \(file .*\) is below io_threads_min = 4 \(file .*\), "
                                          r"the tuner's floor: raise io_threads or lower io_threads_min"):
        load_settings(locations, config, env={})


def test_model_limit_out_of_range_is_refused(locations: Locations, tmp_path: Path) -> None:
    config = tmp_path / "medops.toml"
    config.write_text('[models.tiny]\ntpm = 0\ntpd = 9000\n')
    with pytest.raises(ConfigError, match=r"models.tiny.tpm = 0 .* out of range"):
        load_settings(locations, config, env={})


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known models: .*llama-3\.1-8b-instant"):
        Settings().model_limits("gpt-9")


def test_case_slots_too_small_are_refused(locations: Locations) -> None:
    with pytest.raises(ConfigError, match="bytes a case slot"):
        load_settings(locations, env={"MEDOPS_CASE_MEMORY_MB": "1", "MEDOPS_MAX_CASES_IN_MEMORY": "5000"})


def test_intake_dirs_from_env_are_colon_separated(locations: Locations) -> None:
    settings = load_settings(locations, env={"MEDOPS_INTAKE_DIRS": "/a:/b"}).settings
    assert settings.intake_dirs == ("/a", "/b")


def test_describe_lists_every_setting_with_its_source(locations: Locations) -> None:
    rows = describe(load_settings(locations, env={"MEDOPS_THEME": "light"}))
    by_key = {key: (value, source) for key, value, source in rows}
    assert by_key["theme"] == ("light", "env MEDOPS_THEME")
    assert by_key["groq_rpm"] == ("30", "default")
    assert "models.llama-3.1-8b-instant" in by_key


@pytest.mark.parametrize(("url", "named"), [
    ("redis://op:hunter2@127.0.0.1:99999/0", "its port is not a number from 1 to 65535"),
    ("redis://127.0.0.1:6379/0?socket_timeout=abc&password=hunter2", "Invalid value for 'socket_timeout'"),
    ("redis://[::1/0?password=hunter2", "a '[' without its ']'"),
    ("redis://127.0.0.1:port/0", "its port is not a number"),
])
def test_a_malformed_store_url_is_refused_naming_what_is_wrong_never_its_password(
        locations: Locations, monkeypatch: pytest.MonkeyPatch, url: str, named: str) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", url)
    with pytest.raises(ConfigError, match=r"setting store_url = .* \(from env MEDOPS_STORE_URL\)") as refused:
        load_settings(locations)
    assert named in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_core_built_in_code_with_a_malformed_store_url_is_refused_before_it_joins() -> None:
    import os

    from medops.core.clock import SystemClock
    from medops.core.fleet.membership import join

    with pytest.raises(ConfigError, match="its port is not a number"):
        join(Settings(store_url="redis://127.0.0.1:99999/0"), SystemClock(), os.environ, "console")


@pytest.mark.parametrize("argv", [["fleet"], ["fleet", "--json"], ["status"], ["--attach"]])
def test_every_command_that_opens_the_store_says_a_malformed_url_without_a_traceback(
        locations: Locations, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    from medops.console.cli import main

    for url in ("redis://127.0.0.1:99999/0", "redis://127.0.0.1:6379/0?socket_timeout=abc", "redis://[::1/0"):
        monkeypatch.setenv("MEDOPS_STORE_URL", url)
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert err.startswith("medops: setting store_url = ") and "Traceback" not in out + err
