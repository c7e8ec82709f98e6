"""The house rules on size (issue 10): no module over 400 lines, no function over 80."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import check_sizes  # noqa: E402


def test_no_module_or_function_over_its_limit():
    found = [line for f in sorted((ROOT / "latentpack").rglob("*.py")) for line in check_sizes.oversized(f, 400, 80)]
    assert found == []


def test_the_check_finds_a_long_function(tmp_path):
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 81)
    assert any("function f has 82 lines" in line for line in check_sizes.oversized(long, 400, 80))
