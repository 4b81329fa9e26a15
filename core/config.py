"""Operator-editable configuration: one YAML file per capability in `config/` (sources, variant spec,
retention policies, backup schedule, prices and quotas). Point MEDIA_CONFIG_DIR at another folder to
use a production copy; files missing there fall back to the project's defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has the wrong shape."""


def config_path(name: str) -> Path:
    """Where `<name>.yaml` is read from: MEDIA_CONFIG_DIR first, then the project's config/."""
    override = os.environ.get("MEDIA_CONFIG_DIR")
    if override and (Path(override) / f"{name}.yaml").exists():
        return Path(override) / f"{name}.yaml"
    return PROJECT_CONFIG_DIR / f"{name}.yaml"


def load_config(name: str) -> dict[str, Any]:
    path = config_path(name)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return loaded
