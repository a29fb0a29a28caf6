"""Settings resolution (qbucket._config): arguments > env > config file > embedded server."""

from __future__ import annotations

from pathlib import Path

import pytest

import qbucket
from qbucket import ConfigurationError
from qbucket._config import (
    DEFAULT_REGION,
    EMBEDDED,
    FIELDS,
    Settings,
    cache_dir,
    config_dir,
    data_dir,
    resolve,
)

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY-SECRET"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty QBUCKET_HOME: no default config file unless a test writes one."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def environ(home: Path, **variables: str) -> dict[str, str]:
    """An explicit environment: always with QBUCKET_HOME, so no user config is ever read."""
    return {"QBUCKET_HOME": str(home), **variables}


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FILE_SETTINGS = """
storage_url = "http://file.example:9000"
access_key = "file-access"
secret_key = "file-secret"
region = "file-region"
"""

FULL_ENV = {
    "QBUCKET_STORAGE_URL": "http://qbucket-env.example:9000",
    "QBUCKET_ACCESS_KEY": "qbucket-env-access",
    "QBUCKET_SECRET_KEY": "qbucket-env-secret",
    "QBUCKET_REGION": "qbucket-env-region",
    "AWS_ENDPOINT_URL_S3": "http://aws-s3-env.example:9000",
    "AWS_ENDPOINT_URL": "http://aws-env.example:9000",
    "AWS_ACCESS_KEY_ID": "aws-env-access",
    "AWS_SECRET_ACCESS_KEY": "aws-env-secret",
    "AWS_REGION": "aws-env-region",
    "AWS_DEFAULT_REGION": "aws-env-default-region",
}


# -- the embedded default --------------------------------------------------------------------


def test_nothing_configured_means_the_embedded_server(home: Path) -> None:
    settings = resolve(env=environ(home))
    assert settings.storage_url is None
    assert settings.embedded
    assert settings.access_key is None
    assert settings.secret_key is None
    assert settings.region == DEFAULT_REGION == "us-east-1"
    assert dict(settings.sources) == dict.fromkeys(FIELDS, EMBEDDED)
    assert EMBEDDED == "embedded server"
    assert settings.config_path == home / "config.toml"


def test_embedded_server_ignores_credentials_meant_for_another_server(
    home: Path, tmp_path: Path
) -> None:
    config = write_toml(tmp_path / "c.toml", 'access_key = "file-access"\nsecret_key = "x"\n')
    settings = resolve(
        fileconf=config,
        env=environ(
            home, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="s", QBUCKET_REGION="eu-west-3"
        ),
    )
    assert settings.embedded
    assert settings.access_key is None
    assert settings.secret_key is None
    assert settings.region == DEFAULT_REGION
    assert set(settings.sources.values()) == {EMBEDDED}


# -- precedence ------------------------------------------------------------------------------


def test_arguments_win_over_everything(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", FILE_SETTINGS)
    settings = resolve(
        "http://arg.example:9000",
        "arg-access",
        "arg-secret",
        region="arg-region",
        fileconf=config,
        env=environ(home, **FULL_ENV),
    )
    assert settings.storage_url == "http://arg.example:9000"
    assert settings.access_key == "arg-access"
    assert settings.secret_key == "arg-secret"
    assert settings.region == "arg-region"
    assert dict(settings.sources) == dict.fromkeys(FIELDS, "argument")
    assert not settings.embedded


def test_qbucket_env_wins_over_aws_env_and_file(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", FILE_SETTINGS)
    settings = resolve(fileconf=config, env=environ(home, **FULL_ENV))
    assert settings.storage_url == "http://qbucket-env.example:9000"
    assert settings.access_key == "qbucket-env-access"
    assert settings.secret_key == "qbucket-env-secret"
    assert settings.region == "qbucket-env-region"
    assert dict(settings.sources) == {
        "storage_url": "env QBUCKET_STORAGE_URL",
        "access_key": "env QBUCKET_ACCESS_KEY",
        "secret_key": "env QBUCKET_SECRET_KEY",
        "region": "env QBUCKET_REGION",
    }


def test_aws_env_wins_over_file(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", FILE_SETTINGS)
    aws_only = {name: value for name, value in FULL_ENV.items() if name.startswith("AWS_")}
    settings = resolve(fileconf=config, env=environ(home, **aws_only))
    assert settings.storage_url == "http://aws-s3-env.example:9000"
    assert settings.access_key == "aws-env-access"
    assert settings.secret_key == "aws-env-secret"
    assert settings.region == "aws-env-region"
    assert dict(settings.sources) == {
        "storage_url": "env AWS_ENDPOINT_URL_S3",
        "access_key": "env AWS_ACCESS_KEY_ID",
        "secret_key": "env AWS_SECRET_ACCESS_KEY",
        "region": "env AWS_REGION",
    }


def test_aws_fallback_variables(home: Path) -> None:
    settings = resolve(
        env=environ(
            home,
            AWS_ENDPOINT_URL="http://aws-env.example:9000",
            AWS_ACCESS_KEY_ID="a",
            AWS_SECRET_ACCESS_KEY="s",
            AWS_DEFAULT_REGION="ap-south-1",
        )
    )
    assert settings.storage_url == "http://aws-env.example:9000"
    assert settings.region == "ap-south-1"
    assert settings.sources["storage_url"] == "env AWS_ENDPOINT_URL"
    assert settings.sources["region"] == "env AWS_DEFAULT_REGION"


def test_empty_variables_count_as_unset(home: Path) -> None:
    settings = resolve(
        env=environ(
            home,
            QBUCKET_STORAGE_URL="",
            AWS_ENDPOINT_URL="http://aws-env.example:9000",
            QBUCKET_ACCESS_KEY="",
            AWS_ACCESS_KEY_ID="a",
            AWS_SECRET_ACCESS_KEY="s",
        )
    )
    assert settings.storage_url == "http://aws-env.example:9000"
    assert settings.access_key == "a"


def test_file_is_used_when_nothing_else_is_set(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", FILE_SETTINGS)
    settings = resolve(fileconf=str(config), env=environ(home))
    assert settings.storage_url == "http://file.example:9000"
    assert settings.access_key == "file-access"
    assert settings.secret_key == "file-secret"
    assert settings.region == "file-region"
    assert dict(settings.sources) == dict.fromkeys(FIELDS, f"config file {config}")
    assert settings.config_path == config


def test_each_setting_comes_from_its_own_first_source(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", 'secret_key = "file-secret"\n')
    settings = resolve(
        "http://arg.example",
        fileconf=config,
        env=environ(home, AWS_ACCESS_KEY_ID="env-access"),
    )
    assert (settings.storage_url, settings.access_key, settings.secret_key) == (
        "http://arg.example",
        "env-access",
        "file-secret",
    )
    assert dict(settings.sources) == {
        "storage_url": "argument",
        "access_key": "env AWS_ACCESS_KEY_ID",
        "secret_key": f"config file {config}",
        "region": "default",
    }
    assert settings.region == "us-east-1"


def test_qbucket_config_variable_names_the_file(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "elsewhere" / "q.toml", FILE_SETTINGS)
    settings = resolve(env=environ(home, QBUCKET_CONFIG=str(config)))
    assert settings.storage_url == "http://file.example:9000"
    assert settings.sources["secret_key"] == f"config file {config}"
    assert settings.config_path == config


def test_default_config_file_under_qbucket_home(home: Path) -> None:
    config = write_toml(home / "config.toml", FILE_SETTINGS)
    settings = resolve(env=environ(home))
    assert settings.storage_url == "http://file.example:9000"
    assert settings.sources["access_key"] == f"config file {config}"
    assert settings.config_path == config


def test_explicit_fileconf_wins_over_qbucket_config_and_default(home: Path, tmp_path: Path) -> None:
    write_toml(home / "config.toml", 'storage_url = "http://default.example"\n')
    other = write_toml(tmp_path / "other.toml", 'storage_url = "http://other.example"\n')
    chosen = write_toml(
        tmp_path / "chosen.toml",
        'storage_url = "http://chosen.example"\naccess_key = "a"\nsecret_key = "s"\n',
    )
    settings = resolve(fileconf=chosen, env=environ(home, QBUCKET_CONFIG=str(other)))
    assert settings.storage_url == "http://chosen.example"
    assert settings.config_path == chosen


def test_mapping_fileconf(home: Path) -> None:
    settings = resolve(
        fileconf={
            "storage_url": "https://s3.example.com/",
            "access_key": "map-access",
            "secret_key": "map-secret",
        },
        env=environ(home),
    )
    assert settings.storage_url == "https://s3.example.com"
    assert settings.access_key == "map-access"
    assert settings.secret_key == "map-secret"
    assert settings.region == "us-east-1"
    assert settings.sources["storage_url"] == "fileconf mapping"
    assert settings.sources["region"] == "default"
    assert settings.config_path is None


def test_mapping_fileconf_with_non_string_value(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="region in fileconf mapping must be a string"):
        resolve(fileconf={"storage_url": "http://h", "region": 5}, env=environ(home))


def test_non_string_value_in_file(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", "access_key = 12345\n")
    with pytest.raises(ConfigurationError, match="access_key") as info:
        resolve(fileconf=config, env=environ(home))
    assert info.value.path == str(config)


# -- profiles --------------------------------------------------------------------------------

PROFILES = """
storage_url = "http://default.example"
access_key = "default-access"
secret_key = "default-secret"

[profiles.minio]
storage_url = "http://127.0.0.1:9000"
access_key = "minio-access"
secret_key = "minio-secret"
region = "minio-region"

[profiles.prod]
storage_url = "https://s3.prod.example"
access_key = "prod-access"
secret_key = "prod-secret"
"""


def test_top_level_keys_are_the_default_profile(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", PROFILES)
    settings = resolve(fileconf=config, env=environ(home))
    assert settings.storage_url == "http://default.example"
    assert settings.access_key == "default-access"


def test_profile_argument_selects_a_table(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", PROFILES)
    settings = resolve(fileconf=config, profile="minio", env=environ(home))
    assert settings.storage_url == "http://127.0.0.1:9000"
    assert settings.access_key == "minio-access"
    assert settings.secret_key == "minio-secret"
    assert settings.region == "minio-region"


def test_qbucket_profile_variable_selects_a_table(home: Path) -> None:
    write_toml(home / "config.toml", PROFILES)
    settings = resolve(env=environ(home, QBUCKET_PROFILE="prod"))
    assert settings.storage_url == "https://s3.prod.example"
    assert settings.access_key == "prod-access"


def test_profile_argument_wins_over_qbucket_profile(home: Path) -> None:
    write_toml(home / "config.toml", PROFILES)
    settings = resolve(profile="minio", env=environ(home, QBUCKET_PROFILE="prod"))
    assert settings.access_key == "minio-access"


def test_profiles_in_a_mapping(home: Path) -> None:
    settings = resolve(
        fileconf={
            "profiles": {"p": {"storage_url": "http://p", "access_key": "a", "secret_key": "s"}}
        },
        profile="p",
        env=environ(home),
    )
    assert settings.storage_url == "http://p"


def test_unknown_profile_lists_the_known_ones(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", PROFILES)
    with pytest.raises(ConfigurationError) as info:
        resolve(fileconf=config, profile="staging", env=environ(home))
    message = str(info.value)
    assert "'staging'" in message
    assert "minio, prod" in message
    assert str(config) in message
    assert info.value.path == str(config)


def test_unknown_profile_without_profiles(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", FILE_SETTINGS)
    with pytest.raises(ConfigurationError, match=r"profiles: none"):
        resolve(fileconf=config, env=environ(home, QBUCKET_PROFILE="nope"))


def test_profiles_that_is_not_a_table_is_a_configuration_error(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", 'profiles = "minio"\n')
    with pytest.raises(ConfigurationError, match="minio") as info:
        resolve(fileconf=config, profile="minio", env=environ(home))
    assert info.value.path == str(config)


def test_profile_without_any_config_file(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        resolve(profile="minio", env=environ(home))
    assert info.value.path == str(home / "config.toml")


# -- unreadable config files -----------------------------------------------------------------


def test_explicit_missing_fileconf_is_an_error_naming_the_path(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.toml"
    with pytest.raises(ConfigurationError) as info:
        resolve(fileconf=missing, env=environ(home))
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)
    assert info.value.path == str(missing)
    assert isinstance(info.value, ValueError)


def test_missing_qbucket_config_file_is_an_error(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        resolve(env=environ(home, QBUCKET_CONFIG=str(missing)))
    assert info.value.path == str(missing)


def test_missing_default_config_file_is_fine(home: Path) -> None:
    assert not (home / "config.toml").exists()
    assert resolve(env=environ(home)).embedded


@pytest.mark.parametrize(
    "content",
    [b"storage_url = ", b"[profiles\n", b'storage_url = "unterminated\n', b"\xff\xfe\x00bad"],
)
def test_malformed_config_file(home: Path, tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(content)
    with pytest.raises(ConfigurationError, match="cannot read config file") as info:
        resolve(fileconf=config, env=environ(home))
    assert str(config) in str(info.value)
    assert info.value.path == str(config)


def test_malformed_default_config_file(home: Path) -> None:
    write_toml(home / "config.toml", "this is not toml\n")
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        resolve(env=environ(home))


def test_directory_as_config_file(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        resolve(fileconf=tmp_path, env=environ(home))


# -- storage_url and credentials -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("https://s3.example.com", "https://s3.example.com"),
        ("https://s3.example.com/", "https://s3.example.com"),
        ("http://[::1]:8333", "http://[::1]:8333"),
        ("HTTP://Host.Example:80", "HTTP://Host.Example:80"),
    ],
)
def test_valid_storage_urls(home: Path, url: str, expected: str) -> None:
    settings = resolve(url, "a", "s", env=environ(home))
    assert settings.storage_url == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host.example",
        "s3://bucket",
        "host.example:9000",
        "http://",
        "http:///path",
        "http://host.example/bucket",
        "http://host.example/a/b/",
        "http://host.example?x=1",
        "http://host.example/#frag",
        "http://host.example:notaport",
        "http://host.example:99999",
        "http://[::1",
        "",
    ],
)
def test_invalid_storage_urls(home: Path, url: str) -> None:
    if url == "":
        # An empty string is "not given": with credentials as arguments that is its own error.
        with pytest.raises(ConfigurationError, match="without a storage_url"):
            resolve(url, "a", "s", env=environ(home))
        return
    with pytest.raises(ConfigurationError, match="storage_url") as info:
        resolve(url, "a", "s", env=environ(home))
    assert "(from argument)" in str(info.value)


def test_invalid_storage_url_names_its_source(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="from env QBUCKET_STORAGE_URL"):
        resolve(env=environ(home, QBUCKET_STORAGE_URL="ftp://x", QBUCKET_ACCESS_KEY="a"))


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{SECRET}@host.example",
        f"https://user:{SECRET}@host.example:9000/bucket",
        f"http://user:{SECRET}@host.example:notaport",
        f"ftp://user:{SECRET}@host.example",
        f"http://user:{SECRET}@",
    ],
    ids=["http", "https-with-path", "bad-port", "ftp", "no-host"],
)
def test_credentials_in_the_url_are_refused_and_never_echoed(home: Path, url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(url, "a", "s", env=environ(home))
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_credentials_in_the_url_message(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="must not carry credentials"):
        resolve("http://user:pw@host.example", "a", "s", env=environ(home))


def test_storage_url_without_credentials(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="has no access_key and secret_key") as info:
        resolve("http://host.example", env=environ(home))
    assert "http://host.example" in str(info.value)
    assert "(from argument)" in str(info.value)


def test_storage_url_without_secret_key(home: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", 'storage_url = "http://h"\naccess_key = "a"\n')
    with pytest.raises(ConfigurationError, match="has no secret_key") as info:
        resolve(fileconf=config, env=environ(home))
    assert f"config file {config}" in str(info.value)


@pytest.mark.parametrize(("access_key", "secret_key"), [("a", SECRET), ("a", None), (None, SECRET)])
def test_credentials_as_arguments_need_a_storage_url(
    home: Path, access_key: str | None, secret_key: str | None
) -> None:
    with pytest.raises(ConfigurationError, match="without a storage_url") as info:
        resolve(access_key=access_key, secret_key=secret_key, env=environ(home))
    assert SECRET not in str(info.value)


def test_region_defaults_to_us_east_1(home: Path) -> None:
    settings = resolve("http://h", "a", "s", env=environ(home))
    assert settings.region == "us-east-1"
    assert settings.sources["region"] == "default"


def test_resolve_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBUCKET_STORAGE_URL", "http://from-os-environ:1")
    monkeypatch.setenv("QBUCKET_ACCESS_KEY", "a")
    monkeypatch.setenv("QBUCKET_SECRET_KEY", "s")
    settings = resolve()
    assert settings.storage_url == "http://from-os-environ:1"


# -- the secret never shows ------------------------------------------------------------------


def test_settings_repr_hides_the_secret(home: Path, tmp_path: Path) -> None:
    for settings in (
        resolve("http://h", "AKIDEXAMPLE", SECRET, env=environ(home)),
        resolve(
            env=environ(
                home,
                QBUCKET_STORAGE_URL="http://h",
                AWS_ACCESS_KEY_ID="AKID",
                AWS_SECRET_ACCESS_KEY=SECRET,
            )
        ),
        resolve(
            fileconf=write_toml(
                tmp_path / "c.toml",
                f'storage_url = "http://h"\naccess_key = "AKID"\nsecret_key = "{SECRET}"\n',
            ),
            env=environ(home),
        ),
    ):
        assert isinstance(settings, Settings)
        assert settings.secret_key == SECRET
        assert SECRET not in repr(settings)
        assert SECRET not in str(settings)
        assert "http://h" in repr(settings)


def test_connection_repr_hides_the_secret() -> None:
    conn = qbucket.Connection("http://127.0.0.1:9", "AKIDEXAMPLE", SECRET)
    text = repr(conn)
    assert SECRET not in text
    assert SECRET not in str(conn)
    assert SECRET not in repr(conn.settings)
    assert "http://127.0.0.1:9" in text
    assert "AKIDEXAMPLE" in text
    assert not conn.embedded


def test_connection_repr_with_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    conn = qbucket.Connection()
    assert conn.settings.secret_key == SECRET
    assert SECRET not in repr(conn)


def test_embedded_connection_repr_does_not_start_the_server() -> None:
    conn = qbucket.Connection()
    assert conn.embedded
    assert "embedded" in repr(conn)
    assert conn._transport is None


def test_connection_refuses_bad_settings() -> None:
    with pytest.raises(ConfigurationError):
        qbucket.Connection("ftp://host", "a", "s")
    with pytest.raises(ConfigurationError):
        qbucket.Connection(access_key="a", secret_key=SECRET)


@pytest.mark.parametrize("kind", ["config", "data", "cache"])
@pytest.mark.parametrize("xdg", ["", "/srv/xdg-home", "relative/ignored"])
def test_user_dirs_without_qbucket_home_are_platformdirs_ones(
    monkeypatch: pytest.MonkeyPatch, kind: str, xdg: str
) -> None:
    """On Linux the XDG rule is applied without importing platformdirs: same answer."""
    import platformdirs

    monkeypatch.delenv("QBUCKET_HOME", raising=False)
    monkeypatch.setenv(f"XDG_{kind.upper()}_HOME", xdg)
    ours = {"config": config_dir, "data": data_dir, "cache": cache_dir}[kind]()
    assert ours == Path(getattr(platformdirs, f"user_{kind}_dir")("qbucket", appauthor=False))
    if xdg.startswith("/"):
        assert ours == Path(xdg, "qbucket")
