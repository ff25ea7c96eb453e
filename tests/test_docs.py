"""The docs quote one number for one measurement: every BLEU cited for a recipe is its results table's."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
ROW = re.compile(r"^\| `([\w-]+)`.*?\*\*BLEU ([\d.]+), chrF ([\d.]+)\*\*", re.MULTILINE)


def table() -> dict[str, float]:
    """Recipe -> valid BLEU, from the table of docs/results.md."""
    return {name: float(bleu) for name, bleu, _ in ROW.findall((ROOT / "docs/results.md").read_text())}


def same(quoted: str, measured: float) -> bool:
    decimals = len(quoted.partition(".")[2])
    return float(quoted) == round(measured, decimals)


def test_every_bleu_quoted_for_a_recipe_in_results_md_is_the_tables():
    bleu = table()
    assert len(bleu) >= 5 and bleu["tatoeba-en-zh"] == 32.86
    text = (ROOT / "docs/results.md").read_text()
    quotes = re.findall(r"([\d.]+) for `([\w-]+)`", text)
    assert quotes
    for quoted, name in quotes:
        assert same(quoted, bleu[name]), (name, quoted, bleu[name])


def test_the_readme_table_rounds_the_results_table():
    bleu = table()
    rows = re.findall(
        r"^\| `([\w-]+)`[^|]*\|[^|]*\|[^|]*\| BLEU ([\d.]+)", (ROOT / "README.md").read_text(), re.M
    )
    assert len(rows) >= 5
    for name, quoted in rows:
        assert same(quoted, bleu[name]), (name, quoted, bleu[name])


RELIABILITY_ROW = re.compile(r"^\| (.+?) \| `(test_\w+\.py)::(test_\w+)` \| ([\d,]+) \| (\w+) \|", re.M)


def test_the_reliability_table_has_a_row_for_every_test_it_covers_and_no_other():
    """docs/reliability.md's table is generated (scripts/reliability-table --write): a test added, renamed
    or removed in the files the script runs, or a failing one, shows here until it is regenerated."""
    text = (ROOT / "docs/reliability.md").read_text()
    table = text.split("<!-- reliability-table -->")[1].split("<!-- /reliability-table -->")[0]
    rows = RELIABILITY_ROW.findall(table)
    assert len(rows) >= 40
    files = set(re.findall(r'"tests/(test_\w+\.py)"', (ROOT / "scripts/reliability-table").read_text()))
    assert {file for _, file, _, _, _ in rows} == files
    for file in files:
        defined = set(re.findall(r"^def (test_\w+)\(", (ROOT / "tests" / file).read_text(), re.M))
        assert {function for _, f, function, _, _ in rows if f == file} == defined, file
    for case, _, _, inputs, failures in rows:
        assert failures in ("0", "skipped"), case
        assert int(inputs.replace(",", "")) > 0 or failures == "skipped", case


def linked_pages() -> dict[str, set[Path]]:
    """Each file of the README, docs/ and workbench/ -> the .md pages it links to or names (docs/X.md)."""
    links = {}
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "workbench").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        named = {path.parent / link for link in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)", text)}
        named |= {ROOT / page for page in re.findall(r"\bdocs/[\w-]+\.md\b", text)}
        links[str(path.relative_to(ROOT))] = named
    return links


def test_every_page_the_readme_the_docs_and_the_code_point_to_exists():
    links = linked_pages()
    assert ROOT / "docs/decisions.md" in links["README.md"]
    for source, pages in links.items():
        missing = sorted(str(page.relative_to(ROOT)) for page in pages if not page.is_file())
        assert not missing, (source, missing)


def test_every_docs_page_is_listed_in_the_readme():
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    listed = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert pages == listed


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_anchor_a_docs_link_names_is_a_heading_of_its_page():
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for page, anchor in re.findall(r"\]\(([\w./-]+\.md)#([\w-]+)\)", path.read_text(encoding="utf-8")):
            headings = re.findall(r"^#+ (.+)$", (path.parent / page).read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, (path.name, page, anchor)


def test_the_readme_gives_the_test_command_that_ci_runs():
    """`.ci/run` runs the command the README's Tests section shows."""
    tests = (ROOT / "README.md").read_text().split("\n## Tests\n")[1].split("\n## ")[0]
    assert "```sh\nscripts/test\n```" in tests
    assert (ROOT / "scripts/test").is_file() and "exec scripts/test" in (ROOT / ".ci/run").read_text()
