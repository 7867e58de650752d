"""The package ships everything it reads: every subpackage, the suite definitions and recipes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hear_wavjepa.paths import recipe_file, suite_file

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_for_the_wheel():
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "hear_wavjepa").rglob("__init__.py")
    }
    mapped = set(_setuptools()["package-dir"])
    assert set(_setuptools()["packages"]) == folders | mapped


def test_every_suite_file_and_recipe_ships_as_package_data():
    settings = _setuptools()
    for package, folder in settings["package-dir"].items():
        patterns = settings["package-data"][package]
        for path in (ROOT / folder).iterdir():
            if path.name != "__init__.py" and path.is_file():
                assert any(path.match(p) for p in patterns), f"{path} is not package data"


def test_shipped_files_are_found_through_the_package():
    assert suite_file("mini.yaml").read_text().startswith(("#", "version", "tasks"))
    assert "model" in recipe_file("tiny-cpu.yaml").read_text()
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        suite_file("no-such.yaml")


def test_no_module_looks_up_the_repository_root():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "hear_wavjepa").rglob("*.py")
        if re.search(r"parents\[\d\]", p.read_text())
    ]
    assert offenders == []
