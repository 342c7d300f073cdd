"""The documentation against the code. docs/configuration.md lists every trait; the
README's options are traits, its %greed table lists the magic's subcommands, and its
picture states the wings' rule that test_layers enforces, as docs/architecture.md does,
which also names every module; every relative link resolves. (docs/protocol.md against
the schema: test_protocol.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import traitlets
from test_layers import BELOW

from greed_kernel.frontends.magics import GreedMagics
from greed_kernel.kernel import GreedKernel

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PACKAGE = REPO / "greed_kernel"
#: A markdown link or image: [text](target) / ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def config_traits() -> list[str]:
    return [
        name
        for name, value in vars(GreedKernel).items()
        if isinstance(value, traitlets.TraitType) and value.metadata.get("config")
    ]


def section(text: str, heading: str) -> str:
    """The text under *heading* (a whole line) up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    text = "\n" + text
    assert f"\n{heading}\n" in text, f"no section {heading!r}"
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n{level} ", body, maxsplit=1)[0]


def first_cells(text: str) -> list[str]:
    """The first cell of every table row in *text* (header and rule rows left out)."""
    cells = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells.append(line.split("|")[1].strip())
    return cells


def test_the_configuration_page_lists_every_trait_and_no_other() -> None:
    own = config_traits()
    assert own
    table = section((DOCS / "configuration.md").read_text(), "## Traits")
    rows = [cell.strip("`") for cell in first_cells(table)][1:]  # without the header
    missing = [name for name in own if name not in rows]
    assert not missing, f"docs/configuration.md's table lacks {missing}"
    assert sorted(rows) == sorted(own), "docs/configuration.md lists what is not a trait"


def test_the_readme_options_are_traits() -> None:
    table = section((REPO / "README.md").read_text(), "## Configuration")
    named = [n for cell in first_cells(table)[1:] for n in re.findall(r"`(\w+)`", cell)]
    assert named
    unknown = sorted(set(named) - set(config_traits()))
    assert unknown == [], f"the README's Configuration table names no trait {unknown}"


def test_the_architecture_page_states_the_wings_rule() -> None:
    table = section((DOCS / "architecture.md").read_text(), "# Architecture")
    rules = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].strip("`") in BELOW:
            rules[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[1]))
    assert rules == BELOW


def test_the_readme_lists_every_greed_subcommand_and_no_other() -> None:
    table = section((REPO / "README.md").read_text(), "### The `%greed` magic")
    listed = [n for cell in first_cells(table)[1:] for n in re.findall(r"`%greed (\w+)", cell)]
    subcommands = list(GreedMagics.greed.parser.subcommands.choices)
    assert sorted(set(listed)) == sorted(subcommands)


def test_the_readme_picture_states_the_wings_rule() -> None:
    picture = section((REPO / "README.md").read_text(), "## What the kernel does")
    rules = {
        wing: set(re.findall(r"\w+", imports)) - {"nothing"}
        for wing, imports in re.findall(r"^ +(\w+)/ .*\(imports: ([^)]*)\)$", picture, re.M)
    }
    assert rules == BELOW


def test_the_architecture_page_names_every_module() -> None:
    text = (DOCS / "architecture.md").read_text()
    modules = section(text, "## Modules")
    unnamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "labextension" in rel.parts or path.name == "__init__.py":
            continue
        heading = "### The top" if len(rel.parts) == 1 else f"### {rel.parts[0]}/"
        if f"`{path.name}`" not in section(modules, heading):
            unnamed.append(str(rel))
    assert unnamed == [], f"docs/architecture.md's module tables lack {unnamed}"


def test_every_relative_link_resolves() -> None:
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    assert len(pages) >= 6
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []
