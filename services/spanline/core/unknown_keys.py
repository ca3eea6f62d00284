"""Refusing settings keys that do not exist, with the allowed ones and a did-you-mean.

A typo such as ``SPANLINE_INJEST_PORT`` would otherwise be ignored and the pipeline would
start on the default port. The allowed names are read from the settings model itself, so
a section added to it is allowed without touching this module.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def allowed_env_names(model: type[BaseModel], prefix: str) -> dict[str, list[str]]:
    """Section (or "" for top-level keys) -> every environment variable name it accepts."""
    out: dict[str, list[str]] = {"": []}
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        env = f"{prefix}{name}".upper()
        if section is None:
            out[""].append(env)
            continue
        out[name] = [env] + [f"{env}_{key}".upper() for key in section.model_fields]
        # a section nested in a section (scorer.judge): SPANLINE_SCORER_JUDGE_BASE_URL
        for key, sub_field in section.model_fields.items():
            sub = _section_model(sub_field.annotation)
            if sub is not None:
                out[name] += [f"{env}_{key}_{sub_key}".upper() for sub_key in sub.model_fields]
    return out


def unknown_env_messages(
    model: type[BaseModel], environ: Mapping[str, str], prefix: str, not_settings: Iterable[str]
) -> list[str]:
    """One message per ``<prefix>*`` variable that is neither a setting nor whitelisted."""
    allowed = allowed_env_names(model, prefix)
    every = {n for names in allowed.values() for n in names} | {n.upper() for n in not_settings}
    messages = []
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith(prefix.upper()) or upper in every:
            continue
        messages.append(_explain_env(upper, allowed, prefix.upper(), sorted(every)))
    return messages


def _explain_env(var: str, allowed: dict[str, list[str]], prefix: str, every: Sequence[str]) -> str:
    guess = difflib.get_close_matches(var, every, n=1, cutoff=0.6)
    text = f"unknown environment variable {var}"
    if guess:
        text += f" (did you mean {guess[0]}?)"
    rest = var[len(prefix) :].lower()
    section = next((s for s in allowed if s and rest.startswith(s + "_")), None)
    if section is not None:
        keys = [n[len(prefix) + len(section) + 1 :] for n in allowed[section][1:]]
        text += f"; section {section} allows {prefix}{section.upper()}_ + one of: {', '.join(keys)}"
    else:
        sections = ", ".join(s for s in sorted(allowed) if s)
        text += (
            f"; allowed: {', '.join(allowed[''])}, or {prefix}<SECTION>_<KEY> with SECTION one of: "
            f"{sections.upper()} (`spanline config reference` lists every key)"
        )
    return text


def _model_at(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in path:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _section_model(current.model_fields[part].annotation)
    return current


def explain_unknown_key(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """For a YAML/init key the model refused: did-you-mean and the keys allowed there."""
    owner = _model_at(model, loc[:-1])
    if owner is None or not loc:
        return "unknown key"
    keys = list(owner.model_fields)
    guess = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    text = "unknown key"
    if guess:
        text += f" (did you mean {guess[0]}?)"
    return text + f"; allowed here: {', '.join(keys)}"
