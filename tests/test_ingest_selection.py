"""Selection strings: element-wise semantics and the whitelist."""

import numpy as np
import pytest

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.ingest.selection import evaluate_selection, selection_names


def test_python_and_numpy_style_selections_agree():
    columns = {"pdgId": np.array([13, -13, 11, 13]), "status": np.array([1, 1, 1, 2])}
    numpy_style = evaluate_selection("(abs(pdgId) == 13) & (status == 1)", columns, 4)
    python_style = evaluate_selection("abs(pdgId) == 13 and status == 1", columns, 4)
    assert numpy_style.tolist() == python_style.tolist() == [True, True, False, False]
    assert evaluate_selection("0 < status <= 1", columns, 4).tolist() == [True, True, True, False]
    assert selection_names("abs(pdgId) == 13 and status == 1") == ["pdgId", "status"]


@pytest.mark.parametrize("expression", ["pdgId.__class__", "[x for x in pdgId]", "open('f')", "'a' == pdgId"])
def test_non_whitelisted_syntax_is_rejected(expression):
    with pytest.raises(ConfigError, match="selection"):
        evaluate_selection(expression, {"pdgId": np.arange(3)}, 3)


def test_unknown_column_lists_close_matches():
    with pytest.raises(ConfigError, match=r"unknown column 'pdgid'; close matches: \['pdgId'\]"):
        evaluate_selection("pdgid == 13", {"pdgId": np.arange(3)}, 3)


NANO = {"jetId": np.array([0, 2, 4, 6], np.uint8), "looseId": np.array([False, True, True, False]),
        "nhits": np.array([0, 1, 2, 3], np.uint32), "pt": np.array([10.0, 30.0, 50.0, 5.0], np.float32),
        "event": np.array([2**64 - 1, 2**64 - 2, 7, 8], np.uint64)}


@pytest.mark.parametrize("expression, expected", [
    ("(jetId & 2) != 0", [False, True, False, True]),  # NanoAOD's tight-ID bit: 2 and 6, not 4
    ("(jetId & 2) == 2", [False, True, False, True]),
    ("(jetId & 6) == 6", [False, False, False, True]),
    ("(jetId | 1) == 5", [False, False, True, False]),
    ("(jetId ^ 6) == 0", [False, False, False, True]),
    ("(~jetId & 4) != 0", [True, True, False, False]),
    ("looseId & (pt > 20)", [False, True, True, False]),
    ("~looseId | (pt < 8)", [True, False, False, True]),
])
def test_bit_operators_are_bitwise_on_integers_and_logical_on_true_false(expression, expected):
    assert evaluate_selection(expression, NANO, 4).tolist() == expected


@pytest.mark.parametrize("expression, expected", [
    ("nhits - 1 < 0", [True, False, False, False]),  # uint32: 0 - 1 wrapped to 4294967295
    ("jetId * 50 > 100", [False, False, True, True]),  # uint8: 6 * 50 = 300 wrapped to 44
    ("jetId + 300 > 301", [False, True, True, True]),  # uint8 + 300 had raised OverflowError
    ("jetId > -1", [True, True, True, True]),
    ("event % 2 == 0", [False, True, False, True]),  # uint64 stays exact: 2**64 - 2 is even
])
def test_small_integers_do_not_wrap_and_event_numbers_stay_exact(expression, expected):
    assert evaluate_selection(expression, NANO, 4).tolist() == expected


@pytest.mark.parametrize("expression, message", [
    ("(pt > 20) & jetId", r"'&' between true/false values and integers.*\(jetId & 2\) != 0"),
    ("pt & 2", r"'&' between floats and integers"),
    ("~pt > 0", r"'~' applies to true/false values or integers, not to float32 values"),
    ("jetId & 4", r"expected a true/false result per row, got int64 values; a bit test reads \(jetId & 2\) != 0"),
    ("event + 2**70 > 0", r"cannot be evaluated on these columns"),
])
def test_ambiguous_or_impossible_operations_are_config_errors_naming_the_selection(expression, message):
    with pytest.raises(ConfigError, match=rf"selection '.*': {message}"):
        evaluate_selection(expression, NANO, 4)


def test_a_column_that_is_not_one_value_per_row_is_named():
    """A sequence's field in a flat CalRatio table's selection had stopped ingestion in a numpy traceback."""
    import awkward as ak

    columns = {"jet_pt": np.array([10.0, 20.0]), "jet_trk_d0": ak.Array([[0.1, float("nan")], []])}
    with pytest.raises(ConfigError, match=r"'jet_trk_d0' is not one value per row"):
        evaluate_selection("isfinite(jet_trk_d0) & (jet_pt > 5)", columns, 2)


def test_a_dotted_name_is_one_column_as_root_spells_split_branches():
    """``MCTrack.fPx`` had been refused as attribute access; it is looked up as that column name."""
    columns = {"MCTrack.fPx": np.array([0.5, -2.0, 3.0]), "event.nTracks": np.array([1, 2, 3], np.int32)}
    expression = "(abs(MCTrack.fPx) > 1) & (event.nTracks >= 3) | (MCTrack.fPx < 0)"
    assert selection_names(expression) == ["MCTrack.fPx", "event.nTracks"]
    assert evaluate_selection(expression, columns, 3).tolist() == [False, True, True]
    with pytest.raises(ConfigError, match=r"^selection .*: unknown column 'MCTrack.fPy'; close matches: \['MCTrack.fPx'\]$"):
        evaluate_selection("MCTrack.fPy > 1", columns, 3)


@pytest.mark.parametrize("expression", ["np.abs(x) > 1", "abs(x).real > 1", "x[0] > 1"])
def test_attributes_of_anything_but_a_name_stay_refused(expression):
    with pytest.raises(ConfigError, match="only calls of|is not allowed"):
        evaluate_selection(expression, {"x": np.arange(3.0)}, 3)
