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


def _two_loops(op_a: str, op_b: str, identity_in_a: bool) -> onnx.ModelProto:
    """x -> Loop(op_a) + Loop(op_b) -> y, as tf2onnx writes the CalRatio LSTMs: two independent ``Loop``
    nodes whose bodies carry converter-numbered dimensions; ``identity_in_a`` puts the ``Identity`` that
    tf2onnx places anew each time into the first body."""
    def body(op: str, identity: bool, first_dim: int) -> onnx.GraphProto:
        value = [helper.make_node(op, ["v_in"], ["r"]), helper.make_node("Identity", ["r"], ["v_out"])] if identity \
            else [helper.make_node(op, ["v_in"], ["v_out"])]
        return helper.make_graph(
            [helper.make_node("Identity", ["c_in"], ["c_out"]), *value], "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [f"unk__{first_dim}", 3])],
            [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [f"unk__{first_dim + 1}", 3])])

    nodes = [helper.make_node("Loop", ["M", "cond", "x"], ["a"], body=body(op_a, identity_in_a, 10)),
             helper.make_node("Loop", ["M", "cond", "x"], ["b"], body=body(op_b, False, 12)),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                              [numpy_helper.from_array(np.array(2, np.int64), "M"),
                               numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("op_a, op_b", [("Relu", "Tanh"), ("Neg", "Relu"), ("Tanh", "Exp"), ("Sigmoid", "Neg")])
def test_loop_bodies_number_their_dimensions_in_the_final_order(op_a, op_b):
    """An Identity folded away in the first pass can make the second pass list the two loops the other way
    round; the bodies' dimensions must be numbered in that final order. Numbered after the first pass, one
    CalRatio export under another hash seed had ``d15`` where the others had ``d8`` (each of these pairs
    reproduced it: which loop comes first is decided by a hash)."""
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    with_identity, without = _two_loops(op_a, op_b, True), _two_loops(op_a, op_b, False)
    expected = _run(with_identity, x)
    assert canonicalise(with_identity) and canonicalise(without)
    assert with_identity.SerializeToString() == without.SerializeToString()
    np.testing.assert_array_equal(_run(with_identity, x), expected)
    bodies = [a.g for node in with_identity.graph.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    assert len(bodies) == 2 and not any(d.dim_param.startswith("unk__") for body in bodies for v in body.input
                                        for d in v.type.tensor_type.shape.dim)
