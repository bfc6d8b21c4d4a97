"""The README is the first screen and a map: every page of docs/ is on the map, every link of the
map leads to a file, and the first screen keeps exactly the two commands."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_every_docs_page_is_on_the_readme_map() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", section("Documentation")))
    pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"pages missing from the README map: {sorted(pages - linked)}"


def test_every_link_of_the_readme_leads_to_a_file() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not re.match(r"^[a-z]+:", t)]
    assert local
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, missing


def test_every_relative_link_in_docs_leads_to_a_file() -> None:
    missing = []
    for page in (REPO / "docs").glob("*.md"):
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"^[a-z]+:", target) and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert not missing, missing


def test_the_first_screen_has_exactly_the_two_commands() -> None:
    quick_start = section("Quick start: two commands on a fresh machine")
    commands = re.findall(r"^make \w+", quick_start, re.M)
    assert commands == ["make run", "make test"]
