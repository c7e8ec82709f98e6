"""Measure module and function sizes: no module over 400 lines, no function over 80.

    python tools/check_sizes.py [--max-module 400] [--max-function 80] [PATH ...]

Prints every module and function over its limit (lines as in the file, docstrings
and comments included) and exits 1 if there is one; PATH defaults to the package.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def oversized(path: Path, max_module: int, max_function: int) -> list[str]:
    """The lines to print for one source file: the module and each function over its limit."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if lines > max_module:
        found.append(f"{rel}: module has {lines} lines (limit {max_module})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - first + 1
            if length > max_function:
                found.append(f"{rel}:{node.lineno}: function {node.name} has {length} lines (limit {max_function})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "latentpack"])
    parser.add_argument("--max-module", type=int, default=400)
    parser.add_argument("--max-function", type=int, default=80)
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.py")))
    found = [line for f in files for line in oversized(f, args.max_module, args.max_function)]
    print("\n".join(found) if found else f"{len(files)} modules: none over {args.max_module} lines, "
          f"no function over {args.max_function}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
