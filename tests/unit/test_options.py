"""Start-up options: defaults < file < environment < flags, and one clear line per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from owncast_fast.config.options import OPTIONS, Options, OptionsError, load_options


def test_defaults_match_the_documented_contract() -> None:
    options = load_options({}, environ={})
    assert (options.web_ip, options.web_port) == ("0.0.0.0", 8080)
    assert (options.rtmp_ip, options.rtmp_port) == ("0.0.0.0", 1935)
    assert options.data_dir == "./data"
    assert options.database_target == str(Path("data") / "owncast-fast.db")
    assert options.log_level == "info"
    assert options.explicit == frozenset()


def test_every_option_has_help_an_env_name_and_a_default() -> None:
    fields = set(Options.__dataclass_fields__) - {"explicit"}
    assert {o.attr for o in OPTIONS} == fields
    for option in OPTIONS:
        assert option.help
        assert option.env == "OWNCAST_FAST_" + option.attr.upper()
        assert option.default == getattr(Options(), option.attr)


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "owncast.toml"
    config.write_text('web-port = 9001\nrtmp_port = 9002\nlog-level = "debug"\ndata-dir = "/srv/a"\n')
    env = {"OWNCAST_FAST_RTMP_PORT": "9003", "OWNCAST_FAST_DATA_DIR": "/srv/b"}
    options = load_options({"config": str(config), "data_dir": "/srv/c"}, environ=env)
    assert options.web_port == 9001  # file
    assert options.rtmp_port == 9003  # env beats file
    assert options.data_dir == "/srv/c"  # flag beats env
    assert options.log_level == "debug"
    assert options.explicit == {"config", "web_port", "rtmp_port", "log_level", "data_dir"}


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("web-port = 7000\n")
    assert load_options({}, environ={"OWNCAST_FAST_CONFIG": str(config)}).web_port == 7000


def test_postgres_url_selects_postgres() -> None:
    options = load_options({"database": "postgresql://u:p@db/owncast"}, environ={})
    assert options.database_target == "postgresql://u:p@db/owncast"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"web_port": "0"}, "--web-port: 0 is not a port number (1-65535)"),
        ({"web_port": "http"}, "--web-port: 'http' is not a port number (1-65535)"),
        ({"rtmp_port": "70000"}, "--rtmp-port: 70000 is not a port number (1-65535)"),
        ({"web_ip": "example.com"}, "--web-ip: 'example.com' is not an IP address"),
        ({"log_level": "loud"}, "--log-level: 'loud' is not one of debug, info, warning, error"),
        ({"rtmps_port": "1936"}, "--rtmps-port needs both --tls-cert and --tls-key"),
        ({"rtmp_max_message_size": "10"}, "--rtmp-max-message-size: 10 is outside 4096..16777216 bytes"),
    ],
)
def test_bad_flags(flags: dict[str, str], message: str) -> None:
    with pytest.raises(OptionsError) as info:
        load_options(flags, environ={})
    assert str(info.value) == message


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(OptionsError) as info:
        load_options({}, environ={"OWNCAST_FAST_WEB_PORT": "99999"})
    assert str(info.value) == "OWNCAST_FAST_WEB_PORT: 99999 is not a port number (1-65535)"


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("web-port = 8081\nwebport = 1\n")
    with pytest.raises(OptionsError) as info:
        load_options({"config": str(config)}, environ={})
    assert str(info.value).startswith(f"config file {config}: unknown key 'webport' (known keys: web-ip, ")


def test_wrong_type_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("data-dir = 5\n")
    with pytest.raises(OptionsError) as info:
        load_options({"config": str(config)}, environ={})
    assert str(info.value) == f"config file {config}: expected text, got 5"


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("web-port = = 1\n")
    with pytest.raises(OptionsError, match=r"^config file .*bad.toml: invalid TOML: "):
        load_options({"config": str(config)}, environ={})
    with pytest.raises(OptionsError) as info:
        load_options({"config": str(tmp_path / "nope.toml")}, environ={})
    assert str(info.value) == f"config file {tmp_path / 'nope.toml'}: not found"
