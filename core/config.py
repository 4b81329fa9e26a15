"""Operator-editable configuration: one YAML file per capability in `config/` (sources, variant spec,
retention policies, backup schedule, prices and quotas), each validated by a typed pydantic model.

Point MEDIA_CONFIG_DIR at another folder to use a production copy: every file is then read from that
folder, and a file missing there is an error naming it, never a silent fallback to the project's copy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

PROJECT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has the wrong shape."""


class ConfigModel(BaseModel):
    """Base of the typed configuration models: unknown keys are errors (a typo is never ignored), values
    are immutable, each setting's one default is the model's, and types are strict (`workers: yes` or
    `batch_mb: "16"` is an error, not 1 or 16; a list for a tuple field needs `Field(strict=False)`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def config_dir() -> Path:
    """MEDIA_CONFIG_DIR when set, else the project's config/."""
    override = os.environ.get("MEDIA_CONFIG_DIR")
    return Path(override) if override else PROJECT_CONFIG_DIR


def config_path(name: str) -> Path:
    """Where `<name>.yaml` is read from (see `config_dir`); the file may not exist."""
    return config_dir() / f"{name}.yaml"


def config_names() -> list[str]:
    """The configuration files the platform reads: every `*.yaml` the project ships in config/."""
    return sorted(path.stem for path in PROJECT_CONFIG_DIR.glob("*.yaml"))


def missing_config_files() -> list[str]:
    """Configuration files missing from MEDIA_CONFIG_DIR, described for an error message."""
    override = os.environ.get("MEDIA_CONFIG_DIR")
    if not override:
        return []
    folder = Path(override)
    if not folder.is_dir():
        names = ", ".join(f"{name}.yaml" for name in config_names())
        return [f"MEDIA_CONFIG_DIR={override} is not a folder (it must hold {names})"]
    return [
        f"configuration file {name}.yaml in MEDIA_CONFIG_DIR={override}"
        for name in config_names()
        if not (folder / f"{name}.yaml").is_file()
    ]


def load_config(name: str) -> dict[str, Any]:
    path = config_path(name)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        where = " (MEDIA_CONFIG_DIR)" if os.environ.get("MEDIA_CONFIG_DIR") else ""
        raise ConfigError(f"configuration file {path}{where} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return loaded


def field_path(location: tuple[int | str, ...]) -> str:
    """`('retention', 'presets', 'gfs', 'daily')` -> `retention.presets.gfs.daily`."""
    return ".".join(str(part) for part in location) or "(top level)"


def _describe(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    plain = not isinstance(value, dict | list) and repr(value) not in message
    shown = plain and err["type"] != "extra_forbidden"
    return f"{field_path(err['loc'])}: {message}" + (f" (got {value!r})" if shown else "")


def validate_model(name: str, model: type[M], raw: Any, *, error: type[ConfigError] = ConfigError) -> M:
    """`model.model_validate(raw)`; a failure is re-raised as `error` (a ConfigError) naming the file and
    each field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise error(f"configuration file {config_path(name)}: {problems}") from exc


def load_model(name: str, model: type[M], *, error: type[ConfigError] = ConfigError) -> M:
    """Read `<name>.yaml` and validate it with its typed model (see `validate_model`)."""
    return validate_model(name, model, load_config(name), error=error)
