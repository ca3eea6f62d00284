"""The docs a user reads stand on their own: no links out of the repository, no internal
design file, no machine paths, and every relative link lands on a file that exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from spanline.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")])
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|/work/|CONTRIBUTING-helpers")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_refers_only_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert not OUTSIDE.findall(text), [line for line in text.splitlines() if OUTSIDE.search(line)]
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto:
            continue
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{doc.name}: broken link {target}"


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts.extend(_help_texts(sub))
    return texts


def test_help_texts_refer_only_inside_the_repository() -> None:
    for text in _help_texts(build_parser()):
        assert not OUTSIDE.search(text), text
