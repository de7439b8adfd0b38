"""README.md stays true to the code: the generated settings table, the two commands, the spec's decisions."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tasks.states import DeadLetterReason

REASONS = [r.value for r in DeadLetterReason]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SPEC_README = REPO.parent / "shared" / "spec" / "README.md"


def generator() -> ModuleType:
    """scripts/gen_config_doc.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_config_doc", REPO / "scripts" / "gen_config_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section(text: str, heading: str) -> str:
    """The body of ``## heading`` up to the next ``## ``."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_the_configuration_table_is_the_one_generated_from_the_settings() -> None:
    gen = generator()
    current = gen.current_block(README.read_text())
    assert current is not None, "README.md lost the config table markers"
    assert current == gen.generated_block(), "README.md's config table is out of date: run python scripts/gen_config_doc.py --write"


def test_every_setting_appears_in_the_table_with_its_description() -> None:
    from config.settings import Settings

    table = generator().render_table()
    for name, field in Settings.model_fields.items():
        assert f"`PAYQ_{name.upper()}`" in table
        assert str(field.description).replace("|", "\\|") in table


def test_the_readme_opens_with_the_demo_and_test_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```\w*\n(.*?)```", text, re.DOTALL)
    assert first_block is not None and first_block.start() < text.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands[:2] == ["make demo", "make test"]


def test_every_decision_of_the_spec_is_stated_under_api_assumptions() -> None:
    if not SPEC_README.exists():
        pytest.skip(f"{SPEC_README} not found: the spec is expected in shared/ beside the clone")
    decisions = re.findall(r"^- \*\*(.+?)\*\*", SPEC_README.read_text().split("## Decisions", 1)[1], re.MULTILINE)
    assert decisions, "the spec README lists its decisions as '- **Name** ...'"
    assumptions = section(README.read_text(), "API assumptions")
    assert [d for d in decisions if f"**{d}**" not in assumptions] == []


def test_every_dead_letter_reason_is_documented() -> None:
    text = README.read_text()
    assert [r for r in REASONS if f"`{r}`" not in section(text, "Operations")] == []
    assert [r for r in REASONS if f"`{r}`" not in section(text, "API assumptions")] == []


@pytest.mark.parametrize("heading", ["Architecture", "Configuration", "Operations", "API assumptions", "Scaling out",
                                     "Outcome classification", "Benchmark", "Reliability"])
def test_the_readme_has_its_sections(heading: str) -> None:
    assert f"\n## {heading}\n" in README.read_text()
