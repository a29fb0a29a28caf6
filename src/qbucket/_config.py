"""Where the endpoint and credentials come from, resolved once per :class:`Connection`.

Each setting is taken from the first place that has it:

1. the arguments of ``Connection(...)``;
2. the environment: ``QBUCKET_STORAGE_URL``, ``QBUCKET_ACCESS_KEY``, ``QBUCKET_SECRET_KEY``,
   ``QBUCKET_REGION``, then the standard ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
   ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``;
3. the config file: ``fileconf``, else ``$QBUCKET_CONFIG``, else ``config.toml`` in the user
   config dir (``~/.config/qbucket/`` on Linux);
4. the embedded SeaweedFS server, when no storage URL was found anywhere. It has its own generated
   credentials; credentials found in the environment or a file are then ignored, since they are
   meant for another server.

The config file is TOML. Top-level keys are the default profile; ``[profiles.NAME]`` tables are
selected with ``profile=`` or ``$QBUCKET_PROFILE``::

    storage_url = "https://s3.example.com"
    access_key = "AKIA..."
    secret_key = "..."
    region = "eu-west-1"

    [profiles.minio]
    storage_url = "http://127.0.0.1:9000"
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ._exceptions import ConfigurationError
from ._objects import repr_without

DEFAULT_REGION = "us-east-1"
FIELDS = ("storage_url", "access_key", "secret_key", "region")
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "storage_url": ("QBUCKET_STORAGE_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "access_key": ("QBUCKET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
    "secret_key": ("QBUCKET_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
    "region": ("QBUCKET_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
}
EMBEDDED = "embedded server"


# The XDG base directories (what platformdirs answers on Linux) and their defaults.
_XDG = {
    "config": ("XDG_CONFIG_HOME", "~/.config"),
    "data": ("XDG_DATA_HOME", "~/.local/share"),
    "cache": ("XDG_CACHE_HOME", "~/.cache"),
}


def _user_dir(kind: str, below_home: str, env: Mapping[str, str] | None) -> Path:
    """``$QBUCKET_HOME/<below_home>`` if set, else platformdirs' user ``kind`` dir for qbucket."""
    env = os.environ if env is None else env
    home = env.get("QBUCKET_HOME")
    if home:
        return Path(home).expanduser() / below_home
    if sys.platform == "linux" and "ANDROID_DATA" not in env:
        # The XDG rule that platformdirs applies here, without importing it (and tempfile,
        # shutil, bz2, lzma with it: ~8 ms of every command's start-up).
        variable, default = _XDG[kind]
        base = env.get(variable, "").strip()
        return Path(base if os.path.isabs(base) else os.path.expanduser(default)) / "qbucket"
    import platformdirs

    finder = getattr(platformdirs, f"user_{kind}_dir")
    return Path(finder("qbucket", appauthor=False))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$QBUCKET_HOME``, else the user config dir (``~/.config/qbucket`` on Linux)."""
    return _user_dir("config", "", env)


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$QBUCKET_HOME/data``, else the user data dir (``~/.local/share/qbucket`` on Linux)."""
    return _user_dir("data", "data", env)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$QBUCKET_HOME/cache``, else the user cache dir (``~/.cache/qbucket`` on Linux)."""
    return _user_dir("cache", "cache", env)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("QBUCKET_CONFIG")
    return Path(explicit).expanduser() if explicit else config_dir(env) / "config.toml"


class Settings(NamedTuple):
    """The resolved settings. ``storage_url is None`` means: use the embedded server.

    ``sources`` says where each setting came from ("argument", "env QBUCKET_STORAGE_URL",
    "config file /path", "embedded server", "default"), for ``qbucket config`` and errors.
    """

    storage_url: str | None
    access_key: str | None
    secret_key: str | None
    region: str
    sources: Mapping[str, str]
    config_path: Path | None

    @property
    def embedded(self) -> bool:
        return self.storage_url is None

    def __repr__(self) -> str:  # never the secret key: settings end up in logs and tracebacks
        return repr_without(self, "secret_key")


def _read_config(
    fileconf: str | os.PathLike[str] | Mapping[str, Any] | None,
    profile: str | None,
    env: Mapping[str, str],
) -> tuple[dict[str, str], str, Path | None]:
    """The settings of the chosen profile, a label for error messages, and the file path."""
    if isinstance(fileconf, Mapping):
        document: Mapping[str, Any] = fileconf
        label, path = "fileconf mapping", None
    else:
        explicit = fileconf is not None
        path = Path(fileconf).expanduser() if fileconf is not None else default_config_path(env)
        label = f"config file {path}"
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below, once tomllib is imported
        except FileNotFoundError:
            if explicit or env.get("QBUCKET_CONFIG") or profile:
                raise ConfigurationError(
                    f"config file {path} does not exist", path=str(path)
                ) from None
            return {}, label, path
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read config file {path}: {exc}", path=str(path)
            ) from exc
        import tomllib  # only with a file to read: ~3 ms of every start-up otherwise

        with stream:
            try:
                document = tomllib.load(stream)
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigurationError(
                    f"cannot read config file {path}: {exc}", path=str(path)
                ) from exc
    section: Any = document
    if profile:
        profiles = document.get("profiles", {})
        if not isinstance(profiles, Mapping):
            raise ConfigurationError(
                f"cannot read profile {profile!r}: 'profiles' in {label} must be a table of "
                "[profiles.NAME] tables",
                path=str(path) if path else None,
            )
        section = profiles.get(profile)
        if not isinstance(section, Mapping):
            known = sorted(profiles)
            raise ConfigurationError(
                f"profile {profile!r} not found in {label} (profiles: {', '.join(known) or 'none'})",
                path=str(path) if path else None,
            )
    values: dict[str, str] = {}
    for field in FIELDS:
        value = section.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{field} in {label} must be a string", path=str(path) if path else None
            )
        values[field] = value
    return values, label, path


def resolve(
    storage_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    *,
    fileconf: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    region: str | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings as the module docstring describes.

    Raises:
        ConfigurationError: unreadable config file, unknown profile, malformed storage URL, or
            a storage URL without credentials.
    """
    env = os.environ if env is None else env
    profile = profile or env.get("QBUCKET_PROFILE") or None
    file_values, file_label, config_path = _read_config(fileconf, profile, env)
    arguments = {
        "storage_url": storage_url,
        "access_key": access_key,
        "secret_key": secret_key,
        "region": region,
    }
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for field in FIELDS:
        if arguments[field]:
            values[field], sources[field] = arguments[field], "argument"
            continue
        for variable in ENVIRONMENT[field]:
            if env.get(variable):
                values[field], sources[field] = env[variable], f"env {variable}"
                break
        else:
            if file_values.get(field):
                values[field], sources[field] = file_values[field], file_label
            else:
                values[field] = None

    url = values["storage_url"]
    if url is None:
        if sources.get("access_key") == "argument" or sources.get("secret_key") == "argument":
            raise ConfigurationError(
                "credentials were given without a storage_url; pass storage_url too, or neither "
                "to use the embedded server"
            )
        return Settings(
            storage_url=None,
            access_key=None,
            secret_key=None,
            region=DEFAULT_REGION,
            sources={field: EMBEDDED for field in FIELDS},
            config_path=config_path,
        )
    url = validate_storage_url(url, source=sources["storage_url"])
    missing = [field for field in ("access_key", "secret_key") if not values[field]]
    if missing:
        raise ConfigurationError(
            f"storage_url {url} (from {sources['storage_url']}) has no {' and '.join(missing)}: "
            "set them as arguments, QBUCKET_ACCESS_KEY/QBUCKET_SECRET_KEY or in the config file"
        )
    if not values["region"]:
        values["region"], sources["region"] = DEFAULT_REGION, "default"
    return Settings(
        storage_url=url,
        access_key=values["access_key"],
        secret_key=values["secret_key"],
        region=values["region"] or DEFAULT_REGION,
        sources=sources,
        config_path=config_path,
    )


def validate_storage_url(url: str, *, source: str = "argument") -> str:
    """``url`` without a trailing slash, or :class:`ConfigurationError` saying what is wrong.

    The URL is echoed in messages only once it is known to carry no password.
    """
    try:
        parts = urlsplit(url)
        port_error = None
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            port_error = str(exc)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
        shown = "storage_url" if "@" in url else f"storage_url {url!r}"
        raise ConfigurationError(f"{shown} (from {source}) is malformed: {exc}") from None
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigurationError(
            f"storage_url from {source} must not carry credentials; use access_key/secret_key"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"storage_url {url!r} (from {source}) is not an http:// or https:// URL with a host"
        )
    if any(c.isspace() for c in parts.netloc):
        raise ConfigurationError(f"storage_url {url!r} (from {source}) has a space in its host")
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise ConfigurationError(
            f"storage_url {url!r} (from {source}) must be scheme://host[:port] only; the bucket "
            "is named separately"
        )
    if port_error:
        raise ConfigurationError(f"storage_url {url!r} (from {source}): {port_error}")
    return url.rstrip("/")
