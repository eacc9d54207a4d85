"""Every toy layout (pipeline_steps.toy) ingests with the shipped config mappings to the contract schema."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from pipeline_steps.ingest.mapping import output_columns, table_from_config
from pipeline_steps.ingest.step import run

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
toy_step = pytest.importorskip("pipeline_steps.toy.step")


@pytest.mark.parametrize("dataset", list(CONFIG["datasets"]))
def test_toy_layout_ingests_every_table(tmp_path, dataset):
    settings = CONFIG["datasets"][dataset]
    toy = {**settings["toy"], "entries_per_file": 120, "rogue_file": None}
    raw = tmp_path / "0.root"
    toy_step.generate_file(raw, dataset, 0, toy_step.ToySettings.from_params(toy, settings["tree"], 42))
    reading = {k: settings[k] for k in ("tree", "step_size", "empty_tree", "identity")}
    tree = uproot.open(raw)[settings["tree"]]
    for table, mapping in settings["tables"].items():
        [summary] = run([str(raw)], str(tmp_path / f"{table}.parquet"), str(tmp_path / f"{table}.json"),
                      {**reading, "step_size": 50}, mapping, table, dataset)
        result = pq.read_table(tmp_path / f"{table}.parquet")
        expected = output_columns(table_from_config(table, mapping), tuple(settings["identity"]))
        assert result.schema.names == expected
        assert summary["entries"] == tree.num_entries == 120
        assert 0 < result.num_rows == summary["rows_out"] <= summary["rows_in"]
        if "collection" in mapping:
            assert summary["rows_in"] == int(tree[mapping["collection"]["counter"]].array(library="np").sum())
        else:
            assert result.num_rows == 120 and set(result.column("object_index").to_pylist()) == {0}
