"""Pairs of real and generated rows are checked by identity, never inferred from equal lengths."""

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import InputError
from pipeline_steps.generate.layout import layout_from_config
from pipeline_steps.generate.root_io import read_generated_root, root_writer
from pipeline_steps.validate.compare import distance_metrics, matched_halves
from pipeline_steps.validate.figure_of_merit import FomSettings, figure_of_merit
from pipeline_steps.validate.tables import check_pairs
from tests.conftest import JETS_TABLE
from tests.test_generate_root import _jet_rows

LAYOUT = layout_from_config("Events", ["run", "luminosityBlock", "event"], JETS_TABLE)


def _generated_back(rows: pd.DataFrame, path) -> pd.DataFrame:
    """``rows`` through the generation writer and back, as validation reads a generated file."""
    with root_writer(path, LAYOUT) as write:
        write(rows)
    return read_generated_root(path, LAYOUT)


def test_a_file_generated_from_the_split_pairs_row_by_row(tmp_path):
    test, _ = _jet_rows()
    test = test.astype({"source_file": "string[pyarrow]"})  # as pd.read_parquet gives the split's strings
    check_pairs(test, _generated_back(test, tmp_path / "g.root"), "generated")


def test_a_file_from_another_split_is_refused_naming_the_row(tmp_path):
    test, counts = _jet_rows()
    other = test.copy()
    other.loc[other["entry"] == 30, "entry"] = 99  # one event of another split, the length unchanged
    generated = _generated_back(other, tmp_path / "g.root")
    first = int(counts[:30].sum())
    with pytest.raises(InputError, match=rf"generated row {first} comes from raw file b.root, entry 99, object 0, "
                                         rf"test row {first} from raw file b.root, entry 30, object 0 "
                                         rf"\({counts[30]} of {len(test)} rows differ\)"):
        check_pairs(test, generated, "generated")
    with pytest.raises(InputError, match=rf"{len(test) - counts[0]} generated rows for {len(test)} test rows"):
        check_pairs(test, generated.iloc[counts[0]:], "generated")
    with pytest.raises(InputError, match=r"identity branches \['object_index'\] missing"):
        check_pairs(test, generated.drop(columns="object_index"), "generated")


def test_equal_lengths_alone_are_not_pairs():
    """An unconditional sample of exactly as many rows (SHiP's muons) draws its compared rows at random;
    pairs compare B with its own generated rows. Asking for pairs of unequal samples is a caller's bug."""
    first, second, compared = matched_halves(1000, 1000, 0)
    assert not np.array_equal(compared, second) and len(compared) == len(second)
    assert np.array_equal(matched_halves(1000, 1000, 0, paired=True)[2], second)
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(1000, 2)), rng.normal(size=(900, 2))
    with pytest.raises(ValueError, match="as many generated rows"):
        figure_of_merit(real, generated, FomSettings(n_train_per_class=300, n_eval_per_class=300), paired=True)
    with pytest.raises(ValueError, match="as many generated rows"):
        distance_metrics(real, generated, ["a", "b"], None, None, 5, 0, paired=True)


def test_pairs_keep_a_pair_on_one_side_of_the_bdt_cut():
    """Paired, generated row i is trained or evaluated with real row i: generated rows that copy their
    real rows exactly give the BDT nothing to learn (AUC 0.5 on the nose: equal scores on both sides);
    unpaired, the rows it evaluates are other rows, and the AUC moves off 0.5 by sampling alone."""
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 3))
    settings = FomSettings(n_train_per_class=800, n_eval_per_class=800)
    assert figure_of_merit(real, real.copy(), settings, paired=True).auc == pytest.approx(0.5, abs=1e-12)
    assert abs(figure_of_merit(real, real.copy(), settings).auc - 0.5) > 1e-6
