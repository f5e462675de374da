"""Docs as tests: the README's options table is the code's, and its two set-up commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from owncast_fast.config.options import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_options_table_matches_the_code() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_readme_set_up_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", setup)
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
