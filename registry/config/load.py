"""Reading the file and the ``REGISTRY_*`` overrides, then handing the mapping to the parser."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .parser import Config, Parser

EMBEDDED_DEFAULT: dict[str, Any] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": "./data"}, "delete": {"enabled": True}},
    "http": {"addr": "0.0.0.0:5000"},
}
"""What ``dockyard serve`` runs with no config file: data under ./data, deletes enabled."""

CONFIG_ENV = "DOCKYARD_CONFIG"
"""How ``dockyard serve`` tells its worker processes which config file to load (empty: the
embedded default)."""
SECRET_ENV = "DOCKYARD_SECRET"  # noqa: S105 - the variable's name, not a secret
"""What ``dockyard serve`` hands its workers when ``http.secret`` is not set: one random secret,
so every worker opens the web interface's session cookies."""
ENV_PREFIX = "REGISTRY_"


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], config: Config | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.config = config  # what parsed despite the problems, for checks that need a config


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or the embedded default when None), apply ``REGISTRY_*`` overrides from
    ``environ`` and validate; ConfigError lists every problem."""
    environ = os.environ if environ is None else environ
    if path is None:
        raw: Any = _deep_copy(EMBEDDED_DEFAULT)
        source = "embedded default"
    else:
        source = str(path)
        try:
            raw = _load_yaml(Path(path).read_text())
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the configuration must be a mapping"])
    problems: list[str] = []
    for key, value in sorted(environ.items()):
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
            _apply_override(raw, key[len(ENV_PREFIX) :].lower().split("_"), value, key, problems)
    config = Parser(raw, problems).parse(source)
    if problems:
        raise ConfigError(problems, config)
    return config


def _apply_override(raw: dict[str, Any], keys: list[str], value: str, name: str, problems: list[str]) -> None:
    node: Any = raw
    for key in keys[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            problems.append(f"{name}: {key} is not a section")
            return
        node = child
    try:
        node[keys[-1]] = _load_yaml(value) if value else ""
    except yaml.YAMLError:
        node[keys[-1]] = value


def _load_yaml(text: str) -> Any:
    """YAML with every scalar kept as the text written, as Distribution reads its typed config:
    a secret ``0123`` stays "0123" (not octal 83), ``yes`` stays "yes". Each key's reader turns
    the text into the type it needs."""
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str, list, dict


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    return value
