#!/usr/bin/python3
"""Checks docs/conformance.md: every test it names exists as a function in the named file, and
every statement row names a test, says 'client requirement', or says 'not yet: <reason>' (the 5.0
part also 'not covered: <reason>'). The document has one part per protocol version (a level-1
heading each); a statement appears at most once per part, and the MQTT 5.0 part lists exactly the
251 statements of the 5.0 standard's Appendix B, in order."""
import ast
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import run_tests  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
DOC = os.path.join(ROOT, "docs/conformance.md")
REF = re.compile(r"(tests/conformance/test_\w+\.py)::(test_\w+)")
# Unit tests of the sans-I/O core, for statements no byte-level dialogue can reach yet (the AUTH
# exchange, while the broker offers no authentication method): file::Suite.Name, a GoogleTest TEST.
UNIT_REF = re.compile(r"(tests/unit/\w+\.cpp)::(\w+)\.(\w+)")


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def functions_in(path, cache={}):
    if path not in cache:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        cache[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return cache[path]


def parts():
    """{level-1 heading: [(statement, test cell)]} for each table row whose first cell is an
    MQTT-x.y.z-n statement, grouped by the part of the document it is in."""
    out = {}
    current = None
    for line in doc_text().splitlines():
        if line.startswith("# "):
            current = line[2:].strip()
            out.setdefault(current, [])
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"MQTT-\d+\.\d+\.\d+-\d+", cells[0]):
            assert current is not None, f"statement row before any part heading: {line}"
            out[current].append((cells[0], cells[-1]))
    return out


def statement_rows():
    """(statement, test cell) for every statement row of every part."""
    return [row for rows in parts().values() for row in rows]


def part(prefix):
    found = [rows for title, rows in parts().items() if title.startswith(prefix)]
    assert len(found) == 1, f"expected one part whose heading starts with {prefix!r}, found {len(found)}"
    return found[0]


# Appendix B of MQTT 5.0 (OASIS Standard, 7 March 2019): how many statements each section numbers.
V5_SECTIONS = [
    ("1.5.4", 3), ("1.5.5", 1), ("1.5.7", 1), ("2.1.3", 1), ("2.2.1", (2, 6)), ("2.2.2", 1),
    ("3.1.0", 2), ("3.1.2", 30), ("3.1.3", 12), ("3.1.4", 6), ("3.2.0", 2), ("3.2.2", 22),
    ("3.3.1", 13), ("3.3.2", 20), ("3.3.4", 10), ("3.4.2", 3), ("3.5.2", 3), ("3.6.1", 1), ("3.6.2", 3),
    ("3.7.2", 3), ("3.8.1", 1), ("3.8.3", 5), ("3.8.4", 8), ("3.9.2", 2), ("3.9.3", 2), ("3.10.1", 1),
    ("3.10.3", 2), ("3.10.4", 6), ("3.11.2", 2), ("3.11.3", 2), ("3.12.4", 1), ("3.14.0", 1),
    ("3.14.1", 1), ("3.14.2", 4), ("3.14.4", 3), ("3.15.1", 1), ("3.15.2", 3), ("4.1.0", 2), ("4.2.0", 1),
    ("4.3.1", 1), ("4.3.2", 5), ("4.3.3", 13), ("4.4.0", 2), ("4.5.0", 2), ("4.6.0", 6), ("4.7.0", 1),
    ("4.7.1", 2), ("4.7.2", 1), ("4.7.3", 4), ("4.8.2", 6), ("4.9.0", 3), ("4.12.0", 7), ("4.12.1", 2),
    ("4.13.1", 1), ("4.13.2", 1), ("6.0.0", 4),
]


def v5_statements():
    out = []
    for section, n in V5_SECTIONS:
        first, last = n if isinstance(n, tuple) else (1, n)
        out += [f"MQTT-{section}-{i}" for i in range(first, last + 1)]
    return out


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


def test_named_unit_tests_exist():
    missing = []
    for path, suite, name in set(UNIT_REF.findall(doc_text())):
        full = os.path.join(ROOT, path)
        src = open(full, encoding="utf-8").read() if os.path.exists(full) else ""
        if not re.search(r"\bTEST(_F)?\(\s*" + suite + r"\s*,\s*" + name + r"\s*\)", src):
            missing.append(f"{path}::{suite}.{name}")
    assert not missing, "unit tests named in docs/conformance.md but missing: " + ", ".join(sorted(missing))


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
    assert len(part("MQTT 3.1.1")) > 100, f"only {len(part('MQTT 3.1.1'))} statement rows in the 3.1.1 part"
    bad = []
    for title, rows in parts().items():
        # The 5.0 part also says why a server statement has no test: 'not covered: <reason>'.
        gap = r"(not yet|not covered): \S" if title.startswith("MQTT 5.0") else r"not yet: \S"
        bad += [s for s, cell in rows
                if not (REF.search(cell) or UNIT_REF.search(cell) or cell.startswith("client requirement")
                        or re.match(gap, cell))]
    assert not bad, ("rows without a test, 'client requirement', 'not yet: <reason>' or (5.0) "
                     "'not covered: <reason>': " + ", ".join(bad))


def test_no_duplicate_statements():
    dup = []
    for title, rows in parts().items():
        seen = set()
        for s, _ in rows:
            if s in seen:
                dup.append(f"{s} ({title})")
            seen.add(s)
    assert not dup, "statements listed twice in one part: " + ", ".join(dup)


def test_v5_part_lists_every_statement():
    listed = [s for s, _ in part("MQTT 5.0")]
    want = v5_statements()
    assert len(want) == 251
    missing = [s for s in want if s not in listed]
    unknown = [s for s in listed if s not in want]
    assert not missing and not unknown, f"5.0 part: missing {missing}, not in Appendix B {unknown}"
    assert listed == want, "5.0 statements are not in the standard's order"


def test_v5_cited_tests_are_v5_or_level_neutral():
    # A 5.0 row may cite the 3.1.1 suite only for behaviour that does not depend on the protocol
    # level; every other test it names must be in a 5.0 file.
    allowed_311 = {"tests/conformance/test_connect.py::test_MQTT_3_1_0_1",
                   "tests/conformance/test_connect.py::test_MQTT_3_1_0_1_b",
                   "tests/conformance/test_connect.py::test_MQTT_3_1_2_2"}
    bad = []
    for s, cell in part("MQTT 5.0"):
        for path, name in REF.findall(cell):
            ref = f"{path}::{name}"
            if not re.search(r"/test_v5(_\w+)?\.py$", path) and ref not in allowed_311:
                bad.append(f"{s}: {ref}")
    assert not bad, "5.0 rows naming 3.1.1 tests: " + ", ".join(bad)


if __name__ == "__main__":
    run_tests([test_named_tests_exist, test_named_unit_tests_exist, test_named_tests_are_run, test_every_statement_row_is_resolved,
               test_no_duplicate_statements, test_v5_part_lists_every_statement,
               test_v5_cited_tests_are_v5_or_level_neutral])
