"""README.md and docs/ stay true to the code: the generated settings table, the two commands, the spec's decisions, links that resolve."""

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
DOCS = REPO / "docs"
OPERATING = DOCS / "operating.md"
RELIABILITY = DOCS / "reliability.md"
SPEC_README = REPO.parent / "shared" / "spec" / "README.md"
README_MOST_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


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


def pages() -> list[Path]:
    """The README and every page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def anchors(text: str) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(page: Path) -> list[str]:
    """Every relative link in ``page`` (outside code) whose file, or #anchor in it, does not exist."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading for #{anchor} in {resolved.name}")
    return broken


def test_the_configuration_table_is_the_one_generated_from_the_settings() -> None:
    gen = generator()
    current = gen.current_block(OPERATING.read_text())
    assert current is not None, "docs/operating.md lost the config table markers"
    assert current == gen.generated_block(), "docs/operating.md's config table is out of date: run python scripts/gen_config_doc.py --write"


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


def test_the_readme_is_a_front_door_of_at_most_250_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; move the detail into a page of docs/"


def test_every_decision_of_the_spec_is_stated_under_api_assumptions() -> None:
    if not SPEC_README.exists():
        pytest.skip(f"{SPEC_README} not found: the spec is expected in shared/ beside the clone")
    decisions = re.findall(r"^- \*\*(.+?)\*\*", SPEC_README.read_text().split("## Decisions", 1)[1], re.MULTILINE)
    assert decisions, "the spec README lists its decisions as '- **Name** ...'"
    assumptions = section(RELIABILITY.read_text(), "API assumptions")
    assert [d for d in decisions if f"**{d}**" not in assumptions] == []


def test_every_dead_letter_reason_is_documented() -> None:
    dead_letters = section(OPERATING.read_text(), "Inspecting and replaying dead letters")
    assert [r for r in REASONS if f"`{r}`" not in dead_letters] == []
    assert [r for r in REASONS if f"`{r}`" not in section(RELIABILITY.read_text(), "API assumptions")] == []



def test_every_metric_of_payq_metrics_is_in_the_metrics_table() -> None:
    from payq.cli.metrics import METRICS

    table = section(OPERATING.read_text(), "Metrics")
    assert [m for m in METRICS if not re.search(rf"`{m}(_total)?[{{`]", table)] == []


@pytest.mark.parametrize(("page", "heading"), [
    ("README.md", "What payq is"), ("README.md", "Architecture"), ("README.md", "Where a capture goes"),
    ("README.md", "The packages"), ("README.md", "Read next"),
    ("docs/operating.md", "Configuration"), ("docs/operating.md", "The `payq` command"),
    ("docs/operating.md", "Metrics"), ("docs/operating.md", "Inspecting and replaying dead letters"),
    ("docs/operating.md", "The operators' console (`payq serve`, `/console/`)"),
    ("docs/operating.md", "Deployment with docker-compose"), ("docs/operating.md", "Scaling out"),
    ("docs/store-backends.md", "The HTTP intake"), ("docs/store-backends.md", "The Python producer"),
    ("docs/store-backends.md", "Outcome notifications"), ("docs/store-backends.md", "Verifying a signature"),
    ("docs/reliability.md", "What payq promises"), ("docs/reliability.md", "Outcome classification"),
    ("docs/reliability.md", "API assumptions"),
    ("docs/pacing-and-trips.md", "Pacing, and what to do on a 429 storm"),
    ("docs/pacing-and-trips.md", "A trip's jobs in order"),
    ("docs/benchmarks.md", "The latest full run"),
])
def test_each_page_has_its_sections(page: str, heading: str) -> None:
    assert f"\n## {heading}\n" in (REPO / page).read_text()


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# There\n\n## A trip's jobs in order\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a-trips-jobs-in-order) [gone](missing.md) [no anchor](there.md#nowhere)\n"
        "[web](https://example.com/x) `[in code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
    )
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.md", "there.md#nowhere"]
