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
