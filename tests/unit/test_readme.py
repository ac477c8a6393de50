"""The README is part of the product: its set-up commands and config reference stay true."""

from __future__ import annotations

import re

from skylift.config import config_reference
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_first_section_gives_exactly_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_config_reference_is_current():
    """Regenerate with `skylift config reference` when a field changes."""
    assert config_reference() in README
