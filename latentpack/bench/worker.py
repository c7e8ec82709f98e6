"""Run one codec's encode or decode in a process of its own (the harness measures it).

    python -m latentpack.bench.worker encode NAME PARAMS_JSON FOLDER STORE [FACTS_JSON]
    python -m latentpack.bench.worker decode NAME PARAMS_JSON STORE RESTORED

``PARAMS_JSON`` is the codec's setting as a JSON object (``{"quality": 50}``);
what `Codec.encode` returns (time by phase, design chosen) is written to the
file ``FACTS_JSON`` when given (outside the store, so it is not counted).
Exit status 0 on success; on failure the traceback goes to stderr, which the
harness keeps in the run's log.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from latentpack.bench.codecs import make_codec

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the step; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not (5 <= len(args) <= 6) or args[0] not in ("encode", "decode") or (args[0] == "decode" and len(args) == 6):
        print(__doc__, file=sys.stderr)
        return 2
    step, name, params, source, target = args[:5]
    codec = make_codec(name, **json.loads(params))
    Path(target).mkdir(parents=True, exist_ok=True)
    if step == "decode":
        codec.decode(Path(source), Path(target))
        return 0
    facts = codec.encode(Path(source), Path(target))
    if len(args) == 6:
        Path(args[5]).write_text(json.dumps(facts or {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
