"""Configuration files are read from MEDIA_CONFIG_DIR when it is set, with no fallback to the project's."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import PROJECT_CONFIG_DIR, ConfigError, load_config, missing_config_files


def test_override_folder_wins_and_a_missing_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "custom.yaml").write_text("answer: 42\n")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    assert load_config("custom") == {"answer": 42}
    # the project ships pricing.yaml; a production folder without it must not silently use that copy
    assert (PROJECT_CONFIG_DIR / "pricing.yaml").exists()
    with pytest.raises(ConfigError, match=r"pricing\.yaml \(MEDIA_CONFIG_DIR\) does not exist"):
        load_config("pricing")


def test_missing_config_files_lists_every_file_absent_from_the_override_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIA_CONFIG_DIR", raising=False)
    assert missing_config_files() == []  # the project's own config/ is complete
    for path in PROJECT_CONFIG_DIR.glob("*.yaml"):
        if path.stem not in ("quotas", "variants"):
            (tmp_path / path.name).write_text(path.read_text())
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    missing = missing_config_files()
    assert len(missing) == 2
    assert "quotas.yaml" in missing[0] and "variants.yaml" in missing[1]
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path / "nope"))
    assert "is not a folder" in missing_config_files()[0]


def test_malformed_config_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="mapping"):
        load_config("bad")
