"""SHiP muon categorisation: categories, map-reduce min/max, normalisation, broadening, shares."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline_steps.common.errors import InputError
from pipeline_steps.categorise import categories as cat
from pipeline_steps.categorise.step import run_categorise, run_minmax, run_reduce


def _muons(n: int, seed: int, source_file: str = "0.root") -> pd.DataFrame:
    """A small ingested-like SHiP muon table: about half from the target, both charges."""
    rng = np.random.default_rng(seed)
    from_target = rng.random(n) < 0.5
    table = pd.DataFrame({
        "source_file": source_file,
        "entry": np.arange(n, dtype=np.int64) // 2,
        "object_index": (np.arange(n) % 2).astype(np.int32),
        "veto_TrackID": rng.integers(0, 10, n).astype(np.int32),
        "PdgCode": rng.choice([13, -13], n).astype(np.int32),
        "StartX": np.where(from_target, 0.0, rng.normal(0.0, 0.05, n)).astype(np.float32),
        "StartY": np.where(from_target, 0.0, rng.normal(0.0, 0.05, n)).astype(np.float32),
        "StartZ": rng.uniform(-7100, -6900, n).astype(np.float32),
        "Px": rng.normal(0, 1, n).astype(np.float32),
        "Py": rng.normal(0, 1, n).astype(np.float32),
        "Pz": rng.exponential(20, n).astype(np.float32) + 1,
        "weight": rng.uniform(1, 800, n).astype(np.float32),
    })
    return table


def test_categories_on_hand_built_edge_cases():
    table = pd.DataFrame({
        "PdgCode": [-13, 13, -13, 13, -13, 13, -13, 13, -13],
        "StartX": [0.0, 0.0, 0.1, -0.2, 0.0, 0.0, 0.3, -0.0, 1e-30],
        "StartY": [0.0, 0.0, 0.5, 0.7, 0.4, 0.0 + 2.0, 0.0, 0.0, 0.0],
    })
    # rows: target mu+, target mu-, displaced mu+, displaced mu-, only StartX zero (mu+), only StartX
    # zero (mu-), only StartY zero (mu+), -0.0 counts as zero (mu-), a tiny non-zero is not the target
    assert cat.assign_categories(table).tolist() == [1, 2, 3, 4, 3, 4, 3, 2, 3]


def test_non_muon_and_nan_are_errors_naming_the_table():
    with pytest.raises(InputError, match="bad.parquet.*PdgCode.*211"):
        cat.assign_categories(pd.DataFrame({"PdgCode": [13, 211], "StartX": [0.0, 0.0], "StartY": [0.0, 0.0]}),
                              source="bad.parquet")
    with pytest.raises(InputError, match="NaN"):
        cat.assign_categories(pd.DataFrame({"PdgCode": [13], "StartX": [np.nan], "StartY": [0.0]}))


def test_a_negative_muon_weight_is_refused_naming_the_table():
    muons = _muons(100, 0)
    muons.loc[[3, 7], "weight"] = -2.5
    with pytest.raises(InputError, match=r"part04.parquet: column weight has 2 negative values of 100 \(first -2.5\); "
                                         r"SHiP muon weights are rates"):
        cat.file_minmax(muons, source="part04.parquet")


def test_map_reduce_minmax_equals_one_shot():
    files = [_muons(200, seed, f"{seed}.root") for seed in range(3)]
    reduced = cat.reduce_minmax([cat.file_minmax(f) for f in files])
    one_shot = cat.file_minmax(pd.concat(files, ignore_index=True))
    assert reduced["max_weight"] == one_shot["max_weight"]
    assert reduced["n_rows"] == one_shot["n_rows"] == 600
    for category, expected in one_shot["categories"].items():
        got = reduced["categories"][category]
        assert got["n"] == expected["n"] > 0
        assert got["min"] == expected["min"] and got["max"] == expected["max"]
        assert got["sum_weight"] == pytest.approx(expected["sum_weight"], rel=1e-12)
    # reduce does not depend on the order of the partials
    assert cat.reduce_minmax([cat.file_minmax(f) for f in reversed(files)])["categories"]["3"]["min"] == \
        reduced["categories"]["3"]["min"]


def test_empty_category_in_one_file_is_reduced_correctly():
    only_target = _muons(50, 1).assign(StartX=0.0, StartY=0.0)
    partial = cat.file_minmax(only_target)
    assert partial["categories"]["3"] == {"n": 0, "sum_weight": 0.0, "min": {}, "max": {}}
    reduced = cat.reduce_minmax([partial, cat.file_minmax(_muons(50, 2))])
    assert reduced["categories"]["3"]["min"] == cat.file_minmax(_muons(50, 2))["categories"]["3"]["min"]


def _categorised(table: pd.DataFrame):
    return cat.categorise(table, cat.reduce_minmax([cat.file_minmax(table)]))


def test_normalised_ranges_weight_probability_and_columns():
    table = _muons(400, 7)
    tables, described = _categorised(table)
    largest = float(table["weight"].max())
    assert described["max_weight"] == largest
    for category, part in tables.items():
        expected_columns = list(cat.IDENTITY_COLUMNS) + ["category"] + list(cat.CATEGORY_VARIABLES[category])
        assert list(part.columns) == expected_columns
        assert (part["category"] == category).all()
        for name in cat.CATEGORY_VARIABLES[category]:
            if name == "weight":
                assert 0 < part[name].min() and part[name].max() <= 1.0
            else:
                assert part[name].min() == pytest.approx(-1.0) and part[name].max() == pytest.approx(1.0)
    # the largest weight becomes probability 1 exactly
    assert max(t["weight"].max() for t in tables.values()) == 1.0
    assert set(tables[3].columns) >= {"StartX", "StartY"} and "StartX" not in tables[1].columns


@pytest.mark.parametrize("category", [1, 2, 3, 4])
def test_denormalise_inverts_normalise_and_broaden(category):
    table = _muons(500, 11)
    tables, described = _categorised(table)
    physical = cat.denormalise(tables[category], category, json.loads(json.dumps(described)))
    original = table.sort_values(list(cat.IDENTITY_COLUMNS), ignore_index=True)
    original = original[cat.assign_categories(original) == category].reset_index(drop=True)
    for name in cat.CATEGORY_VARIABLES[category]:
        span = float(original[name].max() - original[name].min())
        np.testing.assert_allclose(physical[name], original[name].astype(np.float64), rtol=1e-6, atol=1e-12 * span)
    if category in (1, 2):
        assert (physical["StartX"] == 0).all() and (physical["StartY"] == 0).all()
    else:
        assert set(described["categories"][str(category)]["broadening"]) == {"StartX", "StartY"}


def test_generated_values_beyond_a_categorys_range_are_held_to_it_in_both_implementations():
    """A normalised Pz of -1.3 had come back as a backward muon and a broadened StartX of 1.3 beyond the
    category's range; the bundle's numpy-only run_bundle.py must give the same physical values."""
    from pipeline_steps.export.run_bundle import ship_denormalise

    tables, described = _categorised(_muons(500, 11))
    info = described["categories"]["3"]
    generated = pd.DataFrame({name: [-1.3, 1.3, 0.2] for name in ("Px", "Pz", "StartX")})
    physical = cat.denormalise(generated, 3, described)
    for name in ("Px", "Pz", "StartX"):  # the range's ends, to the rounding of the broadening's inverse
        span = info["max"][name] - info["min"][name]
        assert list(physical[name].iloc[:2]) == pytest.approx([info["min"][name], info["max"][name]], abs=1e-12 * span)
    inside = cat.denormalise(generated.iloc[2:], 3, described)
    assert physical["Pz"].iloc[2] == inside["Pz"].iloc[0] > info["min"]["Pz"]
    standalone = ship_denormalise(described, {n: generated[n].to_numpy() for n in generated}, np.full(3, 3))
    for name in ("Px", "Pz", "StartX"):
        np.testing.assert_allclose(standalone[name], physical[name].to_numpy(), rtol=1e-12)
    empty = {**described, "categories": {**described["categories"], "4": {**described["categories"]["4"], "min": {},
                                                                              "max": {}}}}
    with pytest.raises(InputError, match="category 4 has no Px range in categories.json"):
        cat.denormalise(generated[["Px"]], 4, empty)
    assert cat.denormalise(generated[["Px"]].iloc[:0], 4, empty).empty  # no rows: nothing to convert
    from pipeline_steps.export.run_bundle import BundleError
    # the bundle's runner, on rows of the other categories only, had read the empty category's range
    found = ship_denormalise(empty, {"Px": np.array([0.2, 0.3])}, np.array([3, 3]))
    np.testing.assert_allclose(found["Px"][0], cat.denormalise(generated[["Px"]].iloc[2:], 3, described)["Px"].iloc[0])
    with pytest.raises(BundleError, match="category 4 has no Px range"):
        ship_denormalise(empty, {"Px": np.array([0.2])}, np.array([4]))


def test_broadening_widens_a_peak_and_round_trips():
    rng = np.random.default_rng(3)
    peaked = np.concatenate([rng.normal(0.1, 1e-3, 1000), [-1.0, 1.0]])
    widened, constants = cat.broaden(peaked)
    assert widened.min() == pytest.approx(-1.0) and widened.max() == pytest.approx(1.0)
    def core_width(values):
        return np.subtract(*np.percentile(values, [75, 25]))

    assert core_width(widened) > 5 * core_width(peaked)
    np.testing.assert_allclose(cat.unbroaden(widened, constants.to_dict()), peaked, rtol=1e-6, atol=1e-12)


def test_shares_weighted_and_unweighted():
    table = _muons(300, 5)
    _, described = _categorised(table)
    categories = cat.assign_categories(table)
    weights = table["weight"].to_numpy(np.float64)
    for category in cat.CATEGORIES:
        info = described["categories"][str(category)]
        assert info["n"] == int((categories == category).sum())
        assert info["share_unweighted"] == pytest.approx((categories == category).mean())
        assert info["share_weighted"] == pytest.approx(weights[categories == category].sum() / weights.sum())
    assert sum(cat.category_shares(described).values()) == pytest.approx(1.0)
    assert sum(cat.category_shares(described, weighted=False).values()) == pytest.approx(1.0)


def test_denormalise_mixed_keeps_row_order():
    table = _muons(200, 9)
    tables, described = _categorised(table)
    mixed = pd.concat([tables[4], tables[1], tables[3]]).sample(frac=1.0, random_state=0)
    physical = cat.denormalise_mixed(mixed, described)
    assert physical.index.equals(mixed.index)
    assert (physical["category"].to_numpy() == mixed["category"].to_numpy()).all()
    one = cat.denormalise(tables[4], 4, described)
    rows = mixed["category"].to_numpy() == 4
    np.testing.assert_allclose(np.sort(physical.loc[rows, "Px"]), np.sort(one["Px"]))


def test_stale_minmax_is_rejected():
    table = _muons(100, 1)
    stale = cat.reduce_minmax([cat.file_minmax(table.iloc[:50])])
    with pytest.raises(InputError, match="rerun categorise_reduce"):
        cat.categorise(table, stale)


def test_run_functions_on_real_parquet_files(tmp_path):
    paths = []
    for index in range(2):
        path = tmp_path / "ingest" / f"{index}.parquet"
        path.parent.mkdir(exist_ok=True)
        _muons(120, index, f"{index}.root").to_parquet(path, index=False)
        paths.append(path)
    partials = [tmp_path / "minmax" / f"{i}.json" for i in range(2)]
    for source, partial in zip(paths, partials):
        run_minmax(source, partial)
    run_reduce(partials, tmp_path / "minmax.json")
    outputs = [tmp_path / f"cat{c}.parquet" for c in cat.CATEGORIES]
    run_categorise(list(reversed(paths)), tmp_path / "minmax.json", outputs, tmp_path / "categories.json",
                   params={"identity": []})
    written = [pd.read_parquet(p) for p in outputs]
    assert sum(len(t) for t in written) == 240
    described = cat.load_categories(tmp_path / "categories.json")
    assert described["source_files"] == ["0.root", "1.root"]
    assert described["n_total"] == 240
    # file order of the inputs does not change the output
    run_categorise(paths, tmp_path / "minmax.json", outputs, tmp_path / "again.json", params={"identity": []})
    assert pd.read_parquet(outputs[2]).equals(written[2])
    assert (tmp_path / "again.json").read_text() == (tmp_path / "categories.json").read_text()


def test_a_sentinel_that_sets_a_categorys_normalisation_is_warned_about(caplog):
    """One Px at float32's maximum turned the category's other momenta into one normalised value, silently."""
    muons = _muons(2000, 3)
    target_mu_plus = np.flatnonzero((muons["PdgCode"] == -13) & (muons["StartX"] == 0) & (muons["StartY"] == 0))
    muons.loc[target_mu_plus[5], "Px"] = np.finfo(np.float32).max
    minmax = cat.reduce_minmax([cat.file_minmax(muons)])
    with caplog.at_level("WARNING", logger="pipeline_steps.categorise.categories"):
        tables, _ = cat.categorise(muons, minmax, source="part04.parquet")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith("part04.parquet: category 1: one muon holds 100% of the spread of Px")
    assert "raw file 0.root" in warned[0]
    caplog.clear()
    cat.categorise(_muons(2000, 3), cat.reduce_minmax([cat.file_minmax(_muons(2000, 3))]))
    assert not caplog.records  # the healthy sample raises nothing
