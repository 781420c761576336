"""Every relative link in README.md and docs/*.md reaches a file, and its #anchor a heading."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from detectors.registry import REGISTRY
from streams.ops import catalogue
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, …


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are no links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    """The targets of the inline Markdown links (and images) in ``text``."""
    return [match[1] for match in _LINK.finditer(_prose(text))]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation but hyphens and
    underscores dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page: repeated headings get ``-1``, ``-2``, … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub("", text)):
        base = slug(match[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in links(page.read_text(encoding="utf-8"))
        if not _EXTERNAL.match(target)
    ]


def test_links_are_found_outside_code_only() -> None:
    text = (
        "[a](docs/x.md#y) `[b](no.md)` [c](https://example.com) ![d](e.png)\n"
        "```\n[e](in-a-block.md)\n```\n[`f`](g.md)"
    )
    assert links(text) == ["docs/x.md#y", "https://example.com", "e.png", "g.md"]


def test_slugs_are_githubs() -> None:
    assert slug("Delivery guarantee: at least once, each alert once") == (
        "delivery-guarantee-at-least-once-each-alert-once"
    )
    assert slug("Dead letters: `lending.deadletter`") == "dead-letters-lendingdeadletter"
    assert slug("Shadow alerts: `alerts.shadow` (since 2.0)") == (
        "shadow-alerts-alertsshadow-since-20"
    )
    assert slug("Backtest: a [threshold](x.md) change") == "backtest-a-threshold-change"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n### A\n") == {"a", "a-1", "a-2"}


def test_the_readme_links_to_the_docs() -> None:
    targets = [target for page, target in relative_links() if page.name == "README.md"]
    assert any(target.startswith("docs/") for target in targets)


@pytest.mark.parametrize(
    ("page", "target"),
    relative_links(),
    ids=[f"{page.relative_to(ROOT)}:{target}" for page, target in relative_links()],
)
def test_relative_link_reaches_a_file_and_a_heading(page: Path, target: str) -> None:
    path_part, _, anchor = unquote(target).partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    assert destination.exists(), f"{page.relative_to(ROOT)} links to missing {path_part}"
    assert destination.is_relative_to(ROOT), f"{target} leaves the repository"
    if anchor:
        assert destination.suffix == ".md", f"#{anchor} on {path_part}, which is not Markdown"
        found = anchors(destination.read_text(encoding="utf-8"))
        assert anchor in found, (
            f"{page.relative_to(ROOT)}: no heading of {destination.relative_to(ROOT)} "
            f"has the anchor #{anchor}; it has {sorted(found)}"
        )


def test_the_detectors_page_is_the_registrys() -> None:
    """docs/detectors.md is generated from the registry; a detector changed without it fails."""
    page = (ROOT / "docs" / "detectors.md").read_text(encoding="utf-8")
    assert page == catalogue.render(), (
        "docs/detectors.md is stale: python -m streams.ops.catalogue > docs/detectors.md"
    )


def test_the_detectors_page_names_every_detector_and_reason() -> None:
    page = catalogue.render()
    for row in REGISTRY:
        assert f"## {row.detector.name}\n" in page
        for code in row.detector.messages:
            assert f"| `{code}` |" in page


def test_the_contracts_reason_codes_are_every_detectors() -> None:
    """The alert topics' reason codes are part of the contract (docs/contract.md): a code a
    detector emits without its line there is a change subscribers were not told of."""
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    section = contract.split("### Reason codes", 1)[1].split("\n### ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    rows = {
        name: set(re.findall(r"`([^`]+)`", codes))
        for name, codes in re.findall(r"^\|[^|]*\| `(\w+)` \| (.*) \|$", table, re.MULTILINE)
    }
    for row in REGISTRY:
        emitted = {code.split("/")[0] for code in row.detector.messages}
        assert rows.get(row.detector.name) == emitted, row.detector.name


# A path to a file of this repository written in backticks: `streams/worker/app.py`.
_CODE_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|json|toml|yml|sh|html))`")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_path_the_docs_name_exists(page: Path) -> None:
    """A module moved or renamed leaves no stale path behind in the docs."""
    named = set(_CODE_PATH.findall(page.read_text(encoding="utf-8")))
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{page.relative_to(ROOT)} names missing files: {missing}"


def test_the_readme_table_names_exactly_the_registered_detectors() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## The detectors", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"^\|[^|]*\| `(\w+)` \|", table, re.MULTILINE))
    assert named == {row.detector.name for row in REGISTRY}


def test_every_setting_is_in_the_operations_table() -> None:
    """A setting added in streams/settings.py without its line in docs/operations.md fails."""
    page = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    missing = [s.env for s in Settings.declared() if f"`{s.env}`" not in table]
    assert not missing, f"docs/operations.md's settings table lacks {missing}"
