"""Run one codec's encode or decode in a process of its own (the harness measures it).

    python -m latentpack.bench.worker encode NAME PARAMS_JSON FOLDER STORE [REPORT_JSON]
    python -m latentpack.bench.worker decode NAME PARAMS_JSON STORE RESTORED [REPORT_JSON]

``PARAMS_JSON`` is the codec's setting as a JSON object (``{"quality": 50}``).
``REPORT_JSON``, when given, receives ``{"peak_rss_mb": ..., "facts": ...}``
(outside the store, so it is not counted): the peak resident memory of this
process image and of the programs it ran, and what `Codec.encode` returned
(time by phase, design chosen).

Why the worker reports its own peak: on Linux a child's ``ru_maxrss`` (from
``wait4``) also counts the memory of the process that started it, as it was
when the child was spawned (exec records the old address space's peak), so
a small codec started from a large bench process would look large.
``VmHWM`` in ``/proc/self/status`` belongs to this process image alone.
"""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from latentpack.bench.codecs import make_codec

__all__ = ["main", "peak_rss_mb"]


def peak_rss_mb() -> float | None:
    """Peak RSS in MiB of this process image (``VmHWM``) and of the children it waited for.

    None where ``/proc`` is not available (the harness then keeps ``wait4``'s figure).
    """
    try:
        with open("/proc/self/status") as fh:
            own = next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), None)
    except OSError:
        return None
    if own is None:
        return None
    # A child's figure may include this process's own size at spawn, which VmHWM already bounds.
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the step; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not (5 <= len(args) <= 6) or args[0] not in ("encode", "decode"):
        print(__doc__, file=sys.stderr)
        return 2
    step, name, params, source, target = args[:5]
    codec = make_codec(name, **json.loads(params))
    Path(target).mkdir(parents=True, exist_ok=True)
    facts = None
    if step == "encode":
        facts = codec.encode(Path(source), Path(target))
    else:
        codec.decode(Path(source), Path(target))
    if len(args) == 6:
        Path(args[5]).write_text(json.dumps({"peak_rss_mb": peak_rss_mb(), "facts": facts or {}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
