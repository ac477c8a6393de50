"""SkyliftConfig: the one config file that drives the registry, functions, stacks and local stack.

Read from ``skylift.toml`` with environment overrides (``SKYLIFT_<SECTION>__<FIELD>``, e.g.
``SKYLIFT_STORAGE__BUCKET``). In Lambda the toml ships in the code asset and the stack sets
``SKYLIFT_CONFIG`` to its path plus overrides for names only known at deploy time (bucket,
delivery stream). A wrong or missing field raises :class:`ConfigError` naming file and field.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from skylift.config_sections import (
    ApiConfig,
    BatchConfig,
    DeployConfig,
    FeatureDeclaration,
    ModelConfig,
    MonitorConfig,
    RegistryConfig,
    RetrainConfig,
    RolloutConfig,
    StorageConfig,
)
from skylift.errors import SkyliftError

__all__ = [
    "ApiConfig",
    "BatchConfig",
    "ConfigError",
    "DeployConfig",
    "FeatureDeclaration",
    "ModelConfig",
    "MonitorConfig",
    "RegistryConfig",
    "RetrainConfig",
    "RolloutConfig",
    "SkyliftConfig",
    "StorageConfig",
    "config_reference",
    "load_config",
    "use_source_dir",
]

CONFIG_ENV_VAR = "SKYLIFT_CONFIG"
DEFAULT_CONFIG_FILE = "skylift.toml"

# Variables documented before the SKYLIFT_<SECTION>__<FIELD> scheme, still honoured: below the
# scheme's own name, above the file. The generated reference names them.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "SKYLIFT_ALLOW_VERSION_SKEW": ("model", "allow_version_skew"),
}


class ConfigError(SkyliftError, ValueError):
    """The config file (or an environment override) is missing, unreadable or invalid."""


def config_reference() -> str:
    """The config reference as a Markdown table per section (README embeds it; a test
    checks the README is current)."""
    lines: list[str] = []
    for section, info in SkyliftConfig.model_fields.items():
        if section == "config_path":
            continue
        model = info.annotation
        title = f"[{section}]"
        if section == "features":  # a table of tables, one per column
            model, title = FeatureDeclaration, "[features.<column>]"
        lines += [f"#### `{title}`", "", "| field | default | meaning |", "|---|---|---|"]
        aliases = {field: env for env, (sec, field) in ENV_ALIASES.items() if sec == section}
        for name, field in model.model_fields.items():  # type: ignore[union-attr]
            if field.is_required():
                default = "*required*"
            elif field.default_factory is not None:
                default = f"`{field.default_factory()}`"
            else:
                default = f"`{field.default!r}`".replace("None", "none")
            meaning = field.description or ""
            if name in aliases:
                meaning += f" Also read from `${aliases[name]}`."
            lines.append(f"| `{name}` | {default} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


class _EnvAliasSource(PydanticBaseSettingsSource):
    """The :data:`ENV_ALIASES` set in the environment, as a nested state."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole state

    def __call__(self) -> dict[str, Any]:
        state: dict[str, dict[str, str]] = {}
        for env_name, (section, field) in ENV_ALIASES.items():
            if (value := os.environ.get(env_name)) is not None:
                state.setdefault(section, {})[field] = value
        return state


_config_file: ContextVar[Path | None] = ContextVar("skylift_config_file", default=None)


class SkyliftConfig(BaseSettings):
    """Everything skylift needs to know, from one file."""

    model_config = SettingsConfigDict(
        env_prefix="SKYLIFT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    model: ModelConfig
    storage: StorageConfig
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    # Per-column declarations ([features.<column>]) that override the inferred schema.
    features: dict[str, FeatureDeclaration] = Field(default_factory=dict)
    # Where the file was read from; relative paths in it resolve against its folder.
    config_path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Priority: explicit kwargs > environment (older aliases below) > the toml file.
        path = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _EnvAliasSource(settings_cls),
        ]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _columns_distinct(self) -> SkyliftConfig:
        if self.model.id_column and self.model.id_column == self.model.target:
            raise ValueError("model.id_column and model.target must be different columns")
        return self

    @model_validator(mode="after")
    def _snap_start_possible(self) -> SkyliftConfig:
        if self.api.snap_start and (reason := self._snap_start_obstacle()):
            raise ValueError(f"api.snap_start = true is not possible: {reason}")
        return self

    def _snap_start_obstacle(self) -> str | None:
        """Why Lambda would refuse SnapStart for the score function, or None."""
        if self.deploy.python_version < "3.12":
            return "Lambda offers SnapStart for Python 3.12 and later (deploy.python_version)"
        if self.deploy.packaging != "layer":
            return "Lambda offers SnapStart for zip packages, not container images"
        if self.api.provisioned_concurrency:
            return "Lambda does not combine SnapStart with api.provisioned_concurrency"
        return None

    @property
    def score_snap_start(self) -> bool:
        """Whether the score function runs with SnapStart ([api].snap_start, resolved)."""
        if self.api.snap_start is None:
            return self._snap_start_obstacle() is None
        return self.api.snap_start

    @property
    def signing_key(self) -> str | None:
        """The KMS key versions are signed with ([registry]), or None when signing is off."""
        if self.registry.signing == "none":
            return None
        return self.registry.signing_key_id or self.default_signing_alias

    @property
    def default_signing_alias(self) -> str:
        """The alias of the key the stack provisions (CDK, and the local stack in moto)."""
        return f"alias/{self.deploy.stack_prefix.lower()}-{self.model.name}-signing"

    @property
    def project_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve_path(self, relative: str) -> Path:
        """A path from the config file, resolved against the file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else (self.project_dir / path).resolve()

    @property
    def source_path(self) -> Path:
        return self.resolve_path(self.model.source_dir)

    def to_env(self) -> dict[str, str]:
        """Environment overrides that reproduce the deploy-time values of this config."""
        env = {"SKYLIFT_STORAGE__BUCKET": self.storage.bucket}
        if self.api.capture_stream:
            env["SKYLIFT_API__CAPTURE_STREAM"] = self.api.capture_stream
        return env


def _describe_error(path: Path, error: Any) -> str:
    loc = error.get("loc", ())
    field = ".".join(str(part) for part in loc) or "(top level)"
    section, _, rest = field.partition(".")
    where = f"[{section}].{rest}" if rest else field
    if section == "features" and len(loc) > 1:  # [features.<column>].<field>
        where = f"[features.{loc[1]}]" + "".join(f".{part}" for part in loc[2:])
    env_name = "SKYLIFT_" + "__".join(str(part).upper() for part in loc)
    env_name += "".join(f" or {env}" for env, at in ENV_ALIASES.items() if at == tuple(loc))
    message = error.get("msg", "invalid")
    if error.get("type") == "missing":
        message = "is required but missing"
    elif error.get("type") == "extra_forbidden":
        message = "is not a known field (check its spelling and section)"
    value = error.get("input")
    shown = (
        f" (got {value!r})"
        if error.get("type") not in ("missing",) and not isinstance(value, dict)
        else ""
    )
    return f"{path}: {where} {message}{shown} [env override: {env_name}]"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> SkyliftConfig:
    """Read ``skylift.toml`` (explicit path, else ``$SKYLIFT_CONFIG``, else ./skylift.toml).

    Environment variables ``SKYLIFT_<SECTION>__<FIELD>`` override the file; keyword
    overrides (nested dicts per section) override both.
    """
    raw = path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE
    config_path = Path(raw).expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(
            f"{config_path}: config file not found (pass --config, set {CONFIG_ENV_VAR}, "
            f"or run from a folder holding {DEFAULT_CONFIG_FILE})"
        )
    import tomllib

    try:
        with config_path.open("rb") as handle:
            tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    token = _config_file.set(config_path)
    try:
        config = SkyliftConfig(config_path=config_path, **overrides)
    except ValidationError as exc:
        problems = "\n  ".join(_describe_error(config_path, err) for err in exc.errors())
        raise ConfigError(f"invalid config:\n  {problems}") from exc
    finally:
        _config_file.reset(token)
    use_source_dir(config)
    return config


def use_source_dir(config: SkyliftConfig) -> Path:
    """Put ``[model].source_dir`` first on sys.path (once).

    The one place that does it: every CLI command and every function loads its config here
    before it unpickles a model, and a pickled pipeline may name the user's own functions
    (a FunctionTransformer of a function in their package), importable only from there.
    """
    source = config.source_path
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))
    return source
