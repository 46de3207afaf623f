#!/usr/bin/python3
"""Checks docs/conformance.md: every test it names exists as a function in the named file, and
every statement row names a test, says 'client requirement', or says 'not yet: <reason>'."""
import ast
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import run_tests  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
DOC = os.path.join(ROOT, "docs/conformance.md")
REF = re.compile(r"(tests/conformance/test_\w+\.py)::(test_\w+)")


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def functions_in(path, cache={}):
    if path not in cache:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        cache[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return cache[path]


def statement_rows():
    """(statement, test cell) for each table row whose first cell is an MQTT-x.y.z-n statement."""
    rows = []
    for line in doc_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"MQTT-\d+\.\d+\.\d+-\d+", cells[0]):
            rows.append((cells[0], cells[-1]))
    return rows


def test_named_tests_exist():
    refs = REF.findall(doc_text())
    assert refs, "no test references found in docs/conformance.md"
    missing = []
    for path, name in refs:
        if not os.path.exists(os.path.join(ROOT, path)):
            missing.append(f"{path} (no such file)")
        elif name not in functions_in(path):
            missing.append(f"{path}::{name}")
    assert not missing, "named in docs/conformance.md but missing: " + ", ".join(sorted(set(missing)))


def test_named_tests_are_run():
    # A test function that exists but is not passed to run_tests would never run.
    missing = []
    for path, name in set(REF.findall(doc_text())):
        full = os.path.join(ROOT, path)
        if not os.path.exists(full):
            continue
        with open(full, encoding="utf-8") as f:
            src = f.read()
        if len(re.findall(r"\b" + re.escape(name) + r"\b", src)) < 2:
            missing.append(f"{path}::{name}")
    assert not missing, "tests not listed in run_tests: " + ", ".join(sorted(missing))


def test_every_statement_row_is_resolved():
    rows = statement_rows()
    assert len(rows) > 100, f"only {len(rows)} statement rows found"
    bad = [s for s, cell in rows
           if not (REF.search(cell) or cell.startswith("client requirement") or re.match(r"not yet: \S", cell))]
    assert not bad, "rows without a test, 'client requirement' or 'not yet: <reason>': " + ", ".join(bad)


def test_no_duplicate_statements():
    seen, dup = set(), []
    for s, _ in statement_rows():
        if s in seen:
            dup.append(s)
        seen.add(s)
    assert not dup, "statements listed twice: " + ", ".join(dup)


if __name__ == "__main__":
    run_tests([test_named_tests_exist, test_named_tests_are_run, test_every_statement_row_is_resolved,
               test_no_duplicate_statements])
