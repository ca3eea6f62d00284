"""Reading a YAML file that must hold a mapping, with errors a human can act on.

Config files, redaction policies and (later) alert rule files all go through here, so
every one reports a missing file, a syntax error's line and column, or a wrong top-level
type the same way, and never echoes the file's content (it may hold secrets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(Exception):
    pass


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in `path` (empty file -> {}); `what` names the file in messages."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise YamlFileError(f"{what} {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlFileError(f"{what} {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise YamlFileError(f"{what} {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data
