"""YAML / JSON settings into frozen dataclasses, with one strictness everywhere: an unknown key is
an error that names the file (or other origin) and the closest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A settings file or mapping that cannot be used; the message names its origin."""


def unknown_key_error(
    origin: str, key: str, known: Iterable[str], what: str = "key"
) -> ConfigError:
    """`origin: unknown <what> 'key'; did you mean 'closest'?` (the hint when one is close)."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{origin}: unknown {what} {key!r}{hint}")


def check_keys(data: Mapping[str, Any], known: Iterable[str], origin: str) -> None:
    """ConfigError on the first key of `data` (in sorted order) that is not in `known`."""
    known = list(known)
    for key in sorted(set(data) - set(known)):
        raise unknown_key_error(origin, key, known)


def from_dict(cls: type[T], data: Any, origin: str) -> T:
    """`cls(**data)` for a dataclass `cls`: keys checked, top-level lists made tuples (frozen
    dataclasses hold tuples), a missing or ill-typed value reported with `origin`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: expected a mapping, got {type(data).__name__}")
    check_keys(data, (f.name for f in dataclasses.fields(cls)), origin)  # type: ignore[arg-type]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{origin}: {err}") from err


def read_yaml(path: Path | str) -> Any:
    """The parsed YAML file; ConfigError naming the file if it is missing or not valid YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
