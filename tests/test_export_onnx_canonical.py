"""Canonical ONNX: the same computation listed and named differently gives the same bytes, and the
rewritten graph computes what the original did."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline_steps.export.onnx_canonical import canonicalise

W = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "weight")


def _model(order: list[int], names: list[str], duplicate: bool = False, identity: bool = False) -> onnx.ModelProto:
    """x -> Relu(x) and Neg(x) -> Add -> MatMul(weight) -> y, nodes listed in ``order`` under ``names``."""
    a, b, c = names
    nodes = [helper.make_node("Relu", ["x"], [a], name=f"relu_{a}"),
             helper.make_node("Neg", ["x"], [b], name=f"neg_{b}"),
             helper.make_node("Add", [a, b], [c], name=f"add_{c}"),
             helper.make_node("MatMul", [c, "weight"], ["y"], name="mm")]
    if duplicate:  # a second Relu of x, read by the Add: the same value as the first
        nodes.append(helper.make_node("Relu", ["x"], [a + "_again"], name="relu_again"))
        nodes[2] = helper.make_node("Add", [a + "_again", b], [c], name=f"add_{c}")
    if identity:
        nodes.append(helper.make_node("Identity", [b], [b + "_id"], name="id"))
        nodes[2] = helper.make_node("Add", [a, b + "_id"], [c], name=f"add_{c}")
    ordered = [nodes[i] for i in order]
    ordered[2:2] = nodes[4:]  # the extra node goes before the Add that reads it
    graph = helper.make_graph(ordered, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [W])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_order_and_names_of_the_converter_do_not_reach_the_bytes():
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    first = _model([0, 1, 2, 3], ["p", "q", "r"])
    second = _model([1, 0, 2, 3], ["zz", "aa", "mm"])
    expected = _run(first, x)
    assert first.SerializeToString() != second.SerializeToString()
    assert canonicalise(first) and canonicalise(second)
    assert first.SerializeToString() == second.SerializeToString()
    again = onnx.ModelProto.FromString(first.SerializeToString())
    assert canonicalise(again) and again.SerializeToString() == first.SerializeToString()  # a fixed point
    onnx.checker.check_model(first, full_check=True)
    np.testing.assert_array_equal(_run(first, x), expected)
    assert [i.name for i in first.graph.input] == ["x"] and [o.name for o in first.graph.output] == ["y"]


@pytest.mark.parametrize("extra", ["duplicate", "identity"])
def test_repeated_computations_and_identities_are_folded(extra):
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    plain = _model([0, 1, 2, 3], ["p", "q", "r"])
    folded = _model([0, 1, 2, 3], ["u", "v", "w"], **{extra: True})
    expected = _run(folded, x)
    assert len(folded.graph.node) == 5
    assert canonicalise(plain) and canonicalise(folded)
    assert len(folded.graph.node) == 4 and folded.SerializeToString() == plain.SerializeToString()
    np.testing.assert_array_equal(_run(folded, x), expected)


def test_identical_random_ops_are_never_merged():
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["r1"], seed=1.0),
             helper.make_node("RandomNormalLike", ["x"], ["r2"], seed=1.0),
             helper.make_node("Add", ["r1", "r2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    before = model.SerializeToString()
    assert not canonicalise(model)
    assert model.SerializeToString() == before


def test_converter_numbered_symbolic_dimensions_do_not_reach_the_bytes():
    """tf2onnx numbers unknown dimensions with a process-wide counter: the CalRatio export of a fresh run
    differed from the first only in ``unk__1314`` against ``unk__1315`` inside an LSTM loop body."""
    def model(dimension: str) -> onnx.ModelProto:
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dimension])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dimension])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])

    first, second = model("unk__1314"), model("unk__1315")
    assert canonicalise(first) and canonicalise(second)
    assert first.SerializeToString() == second.SerializeToString()
    assert [d.dim_param for d in first.graph.input[0].type.tensor_type.shape.dim] == ["batch", "d0"]
