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
