"""The effective configuration: every section, from env vars and an optional YAML file.

Precedence (highest first): init kwargs, ``SPANLINE_*`` environment variables, the YAML
file given with ``--config`` (or ``SPANLINE_CONFIG``), defaults. Errors name the key and
what is allowed, because a pipeline that starts with a typo in its config silently does
the wrong thing for days.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from spanline.alerter.config import AlerterSettings
from spanline.coldtier.config import ColdtierSettings
from spanline.core.settings import (
    HttpSettings,
    KafkaSettings,
    LogSettings,
    RetentionSettings,
    SecuritySettings,
    TopicSettings,
)
from spanline.core.unknown_keys import explain_unknown_key, unknown_env_messages
from spanline.core.yaml_file import YamlFileError, read_yaml_mapping
from spanline.ingest.config import IngestSettings
from spanline.redactor.config import RedactorSettings
from spanline.scorer.config import ScorerSettings
from spanline.writer.config import WriterSettings

CONFIG_ENV = "SPANLINE_CONFIG"
ENV_PREFIX = "SPANLINE_"
# `SPANLINE_*` variables that are not settings, all of them, in this one place: every
# other `SPANLINE_*` variable must be a setting or start-up refuses it as a typo.
NOT_SETTINGS_ENV = frozenset(
    {
        CONFIG_ENV,  # the YAML file
        "SPANLINE_PSEUDONYM_SECRET",  # the redaction policy's pseudonym secret (docs/redaction.md)
        "SPANLINE_TEST_HOLD_AFTER_INSERT_S",  # tests/support/writer_hold.py: a writer paused mid-batch
    }
)


class ConfigError(Exception):
    """Configuration is invalid; the message is meant for a human operator."""


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPANLINE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        validate_default=True,
    )

    project: str = Field(default="default", description="project for data sent without an API key")
    data_dir: Path = Field(default=Path(".spanline"), description="local state for `spanline up`")
    shutdown_grace_s: float = Field(
        default=20.0, gt=0, le=600, description="SIGTERM drain budget of every service before it gives up"
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    retention: RetentionSettings = RetentionSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    security: SecuritySettings = SecuritySettings()
    ingest: IngestSettings = IngestSettings()
    redactor: RedactorSettings = RedactorSettings()
    writer: WriterSettings = WriterSettings()
    coldtier: ColdtierSettings = ColdtierSettings()
    scorer: ScorerSettings = ScorerSettings()
    alerter: AlerterSettings = AlerterSettings()

    _yaml_data: dict[str, Any] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls, cls._yaml_data))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        return read_yaml_mapping(path, "config file")
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per bad key: dotted path, what is wrong, never the offending value (it may be a secret)."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = explain_unknown_key(Settings, err["loc"])
        lines.append(f"  {key}: {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from env + YAML; raise :class:`ConfigError` with a readable message."""
    unknown = unknown_env_messages(Settings, os.environ, ENV_PREFIX, NOT_SETTINGS_ENV)
    if unknown:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {m}" for m in unknown))
    path = config_file or os.environ.get(CONFIG_ENV)
    data = _read_yaml(Path(path)) if path else {}
    Settings._yaml_data = data
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    finally:
        Settings._yaml_data = {}


# a URL whose query carries a credential is masked whole
_SECRET_QUERY = re.compile(r"[?&;](?:[^=&]*(?:password|secret|token|key)[^=&]*)=", re.I)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret replaced by '********'; a secret URL (a
    DSN) keeps everything but its password, so a person can still see where it points."""
    from spanline.writer.config import redact_dsn

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if "://" in secret and not _SECRET_QUERY.search(secret):
                return redact_dsn(secret)
            return "********" if secret else ""
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return walk(settings.model_dump(mode="python"))  # type: ignore[no-any-return]
