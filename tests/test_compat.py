"""Archives written by every released format version still read, and decode the same."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from latentpack.cli import cli
from latentpack.formats import open_archive

ARCHIVES = sorted((Path(__file__).parent / "data" / "archives").glob("v*/*.lpk"))


def test_there_is_a_fixture_for_the_current_format_version() -> None:
    from latentpack.formats.schema import FORMAT_VERSION

    assert any(p.parent.name == f"v{FORMAT_VERSION}" for p in ARCHIVES), "run tests/data/make_fixtures.py"


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_reads_and_decodes_as_recorded(archive: Path, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from make_fixtures import expected_facts

    recorded = json.loads(archive.with_suffix(".json").read_text())
    facts = expected_facts(archive)
    assert facts["names"] == recorded["names"]
    assert facts["modes"] == recorded["modes"]
    assert facts["shapes"] == recorded["shapes"]
    assert facts["header"] == recorded["header"]
    # Decoding may differ by float round-off across machines, not by more.
    assert np.allclose(facts["working_means"], recorded["working_means"], atol=0.05)
    with open_archive(archive) as ar:
        assert ar.format_version == archive.parent.name[1:]
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["extract", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(recorded["names"])
