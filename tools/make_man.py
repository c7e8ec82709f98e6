"""Write the man page, docs/latentpack.1, from the click definitions (`latentpack.cli.manpage`).

    python tools/make_man.py            # writes docs/latentpack.1
    python tools/make_man.py --check    # exit 1 if docs/latentpack.1 is out of date
    man -l docs/latentpack.1
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentpack import __version__  # noqa: E402
from latentpack.cli import cli  # noqa: E402
from latentpack.cli.manpage import render_man  # noqa: E402

PAGE = ROOT / "docs" / "latentpack.1"


def main(argv: list[str]) -> int:
    text = render_man(cli, __version__)
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python tools/make_man.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
