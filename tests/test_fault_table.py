"""The README's fault-suite table and the tests marked `faults` list the same tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"


def marked_fault_tests() -> set[str]:
    """Test functions marked `faults`, by decorator or by the module's `pytestmark`."""
    found = set()
    for path in TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        module_marked = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                            and "faults" in ast.unparse(n.value) for n in tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                if module_marked or any(ast.unparse(d) == "pytest.mark.faults" for d in node.decorator_list):
                    found.add(node.name)
    return found


def readme_fault_tests() -> list[str]:
    section = README.read_text().split("### The fault suite", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|.*\| `(test_\w+)` \|$", section, re.MULTILINE)


def test_the_readme_fault_table_lists_every_fault_test_once() -> None:
    listed = readme_fault_tests()
    assert len(listed) >= 30 and len(listed) == len(set(listed)), "the table is missing or lists a test twice"
    assert set(listed) == marked_fault_tests()
