"""Where the ROOT-written reader test files are (uproot's HZZ and Zmumu samples, see shared/data/real/README.md).

They come from scikit-hep-testdata and are not ours to commit, so a checkout has them only where the project's
``shared/`` folder lies beside it. Looked for, in order: ``$FASTSIM_REAL_ROOT_FILES``, ``shared/data/real`` next
to the checkout, and the workplace's ``/work/shared/data/real`` (where CI's clean clones find them). Tests that
need them are skipped with that reason where none holds them, instead of failing on a missing file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXPECTED = ("uproot-HZZ.root", "uproot-HZZ-lz4.root", "uproot-HZZ-lzma.root", "uproot-Zmumu.root")


def _find() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2] / "shared/data/real", Path("/work/shared/data/real")]
    if os.environ.get("FASTSIM_REAL_ROOT_FILES"):
        candidates.insert(0, Path(os.environ["FASTSIM_REAL_ROOT_FILES"]))
    return next((folder for folder in candidates if all((folder / name).is_file() for name in EXPECTED)), None)


REAL = _find()

needs_real_files = pytest.mark.skipif(
    REAL is None, reason="the ROOT-written test files (shared/data/real) are not next to this checkout; "
                         "set FASTSIM_REAL_ROOT_FILES to their folder")
