"""Configuration files are read from MEDIA_CONFIG_DIR first, then the project's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config


def test_override_folder_wins_and_missing_files_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "custom.yaml").write_text("answer: 42\n")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    assert load_config("custom") == {"answer": 42}
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no-such-config")


def test_malformed_config_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="mapping"):
        load_config("bad")
