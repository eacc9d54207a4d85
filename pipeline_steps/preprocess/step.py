"""Entries of the preprocess rules: ``run_model`` (``preprocess_model``: flows and covariance GANs)
and ``run_calratio`` (``preprocess_calratio``).

The work is in :mod:`~pipeline_steps.preprocess.model_splits` and
:mod:`~pipeline_steps.preprocess.calratio_splits`. Each is imported inside its entry on purpose:
``source_hash`` follows module-level imports only, so an edit of the CalRatio preprocessing does not
rerun the generative models' preprocessing (and their training), nor the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence


def run_model(tables: Sequence[str | Path], outputs: Mapping[str, str | Path], params: Any,
              log: str | Path | None = None) -> None:
    """Rule ``preprocess_model``: ingested (or cat1..4) tables -> splits, transforms, plots."""
    from pipeline_steps.preprocess.model_splits import run

    run(tables=tables, outputs=outputs, params=params, log=log)


def run_calratio(main_tables: Sequence[str | Path], control_tables: Sequence[str | Path], output_dir: str | Path,
                 params: Mapping[str, Any], log: str | Path | None = None) -> None:
    """Rule ``preprocess_calratio``: main sample + control region -> splits, sequences, transforms."""
    from pipeline_steps.preprocess.calratio_splits import run

    run(main_tables=main_tables, control_tables=control_tables, output_dir=output_dir, params=params, log=log)
