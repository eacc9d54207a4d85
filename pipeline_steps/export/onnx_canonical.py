"""The same ONNX bytes for the same model: nodes in a canonical order under canonical names.

tf2onnx converts the CalRatio classifier (three Conv1D + LSTM branches, the LSTMs as ``Loop``
subgraphs) into the same computation each time, but lists and names its nodes in an order that
changes from one conversion to the next, so ``model.onnx`` differed between two exports of the same
``.keras`` file. ``canonicalise`` rewrites the graph so that its bytes are a function of the
computation only:

* every tensor gets a structural signature: a hash of the op that makes it (type, domain,
  attributes, a subgraph attribute by its own structure) and of the signatures of that op's inputs;
  initialisers hash their content; the main graph's inputs their name, a subgraph's by position;
* nodes are listed in a topological order that breaks ties by signature, and renamed after their
  position (``n12_Loop``, outputs ``t12_0``; inside subgraphs with the owning node's name as prefix);
  initialisers are named and listed in order of first use;
* the converter's numbered symbolic dimensions (``unk__1314``) are renamed in order of appearance.

The main graph's inputs and outputs keep their names (the bundle runner feeds and reads them). Two
nodes that compute the same thing (tf2onnx repeats a ``Not`` of the mask in the LSTM loop body) have
one signature and no unique order, so the later one is dropped and its readers read the first one:
the same value, for every deterministic op. Random ops are never merged; a graph that would need
that, or a merge of a named main-graph output, is left as it is: correctness before identical bytes.
Export verifies the rewritten file against the framework like any other.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from pathlib import Path

import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)
SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


class NotCanonical(Exception):
    """Two nodes of one graph have the same signature: no unique order exists."""


def canonicalise_file(path: str | Path) -> bool:
    """Rewrite the ONNX file at ``path`` in canonical form; False (file untouched) where it cannot be."""
    model = onnx.load(str(path))
    if not canonicalise(model):
        log.warning("%s: graph left in converter order (two nodes compute the same thing)", path)
        return False
    onnx.save(model, str(path))
    return True


#: Passes until the form is a fixed point. The first pass folds identities and repeats inside loop
#: bodies only after it has hashed them into their loop's signature; the second hashes the folded
#: bodies, so two conversions that differ only in where the converter put an ``Identity`` meet there.
MAX_PASSES = 4


def canonicalise(model: onnx.ModelProto) -> bool:
    """Reorder and rename ``model.graph`` in place; False, with nothing changed, where it cannot be."""
    work = onnx.ModelProto.FromString(model.SerializeToString())
    previous = None
    for _ in range(MAX_PASSES):
        try:
            _canonicalise_graph(work.graph, outer_signatures={}, outer_names={}, prefix="", main=True)
        except NotCanonical:
            return False
        current = work.SerializeToString()
        if current == previous:
            _rename_symbolic_dimensions(work.graph)  # once, in the final order (see its docstring)
            model.CopyFrom(work)
            return True
        previous = current
    return False


def _rename_symbolic_dimensions(graph: onnx.GraphProto) -> None:
    """Converter-made symbolic dimensions (tf2onnx's ``unk__1314``, numbered by a process-wide counter,
    so the same model converted after another one gets ``unk__1315``) renamed ``d0``, ``d1``, ... in
    order of first appearance in the canonical graph; names a person gave (``batch``) are kept.

    Only the fixed point's order is canonical: renamed after the first pass, two LSTM loops that the
    second pass lists the other way round kept the first pass's numbers (``d8`` in one loop body in one
    export, ``d15`` in another export of the same ``.keras`` file, under another hash seed)."""
    names: dict[str, str] = {}
    for value in _value_infos(graph):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param.startswith("unk__"):
                dim.dim_param = names.setdefault(dim.dim_param, f"d{len(names)}")


def _value_infos(graph: onnx.GraphProto):
    """The typed values of ``graph`` and of its subgraphs, in graph order (inputs, outputs, value_info)."""
    yield from graph.input
    yield from graph.output
    yield from graph.value_info
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                yield from _value_infos(subgraph)


def _digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()


def _tensor_signatures(graph: onnx.GraphProto, outer: dict[str, str], main: bool) -> dict[str, str]:
    """Signatures of the graph's own inputs and initialisers, on top of the enclosing scopes'."""
    tensor = dict(outer)
    for position, item in enumerate(graph.input):
        tensor[item.name] = _digest("input", item.name if main else str(position))
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        tensor[init.name] = _digest("initializer", str(array.dtype), str(array.shape), array.tobytes())
    return tensor


def _attribute_digest(attribute: onnx.AttributeProto, tensor: dict[str, str]) -> str:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return _digest(attribute.name, _graph_digest(attribute.g, tensor))
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return _digest(attribute.name, *(_graph_digest(g, tensor) for g in attribute.graphs))
    return _digest(attribute.SerializeToString())


def _graph_digest(graph: onnx.GraphProto, outer: dict[str, str]) -> str:
    """A subgraph's structure: its nodes' signatures (sorted) and its outputs' signatures."""
    signatures, tensor = _node_signatures(graph, outer, main=False)
    return _digest(*sorted(signatures), *(tensor.get(o.name, o.name) for o in graph.output))


def _node_signatures(graph: onnx.GraphProto, outer: dict[str, str], main: bool) -> tuple[list[str], dict[str, str]]:
    """Structural hash of each node (graph order is topological), and of every tensor in scope."""
    tensor = _tensor_signatures(graph, outer, main)
    signatures = []
    for node in graph.node:
        attributes = sorted(_attribute_digest(a, tensor) for a in node.attribute)
        inputs = [tensor.get(name, _digest("unknown", name)) if name else "none" for name in node.input]
        signature = _digest(node.op_type, node.domain, *attributes, "|", *inputs)
        signatures.append(signature)
        for index, output in enumerate(node.output):
            tensor[output] = _digest(signature, str(index))
    return signatures, tensor


def _topological_order(graph: onnx.GraphProto, signatures: list[str]) -> list[int]:
    """Kahn's algorithm over node indices, ready nodes taken by smallest signature.

    Inputs a node takes from an enclosing scope, or that its subgraphs take from this one, do not
    order it: only the inputs this graph's own nodes produce (subgraph references included)."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    needs = [{producer[name] for name in _all_inputs(node) if name in producer} - {i}
             for i, node in enumerate(graph.node)]
    consumers: dict[int, set[int]] = {}
    for i, required in enumerate(needs):
        for j in required:
            consumers.setdefault(j, set()).add(i)
    waiting = [len(required) for required in needs]
    ready = [(signatures[i], i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for j in sorted(consumers.get(i, ())):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (signatures[j], j))
    return order


def _all_inputs(node: onnx.NodeProto) -> list[str]:
    """The node's inputs and every name its subgraphs read (they may come from this scope)."""
    names = list(node.input)
    for attribute in node.attribute:
        for graph in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)):
            for inner in graph.node:
                names += _all_inputs(inner)
    return names


def _drop_identities(graph: onnx.GraphProto, main: bool) -> None:
    """``Identity`` nodes removed, their readers reading the input: tf2onnx decides anew each time
    which of a loop body's outputs gets ``x`` and which ``Identity(x)``. A main-graph output keeps its."""
    named = {o.name for o in graph.output} if main else set()
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == "Identity" and node.output[0] not in named}
    if not alias:
        return
    while any(target in alias for target in alias.values()):  # chains of identities
        alias = {name: alias.get(target, target) for name, target in alias.items()}
    _keep_nodes(graph, [node for node in graph.node if not (node.op_type == "Identity" and node.output[0] in alias)],
                alias)


def _merge_duplicates(graph: onnx.GraphProto, outer_signatures: dict[str, str], main: bool) -> None:
    """Drop each node whose signature an earlier node has; its readers read the earlier node's outputs."""
    while True:
        signatures, _ = _node_signatures(graph, outer_signatures, main)
        first: dict[str, int] = {}
        alias: dict[str, str] = {}
        dropped = []
        for i, signature in enumerate(signatures):
            if signature not in first:
                first[signature] = i
                continue
            node, kept = graph.node[i], graph.node[first[signature]]
            if "Random" in node.op_type or node.op_type in ("Multinomial", "Dropout"):
                raise NotCanonical(f"two identical random ops {node.op_type}")
            if main and set(node.output) & {o.name for o in graph.output}:
                raise NotCanonical(f"a duplicate computes the graph output {list(node.output)}")
            alias.update({dup: orig for dup, orig in zip(node.output, kept.output) if dup})
            dropped.append(i)
        if not dropped:
            return
        _keep_nodes(graph, [node for i, node in enumerate(graph.node) if i not in set(dropped)], alias)


def _keep_nodes(graph: onnx.GraphProto, remaining: list[onnx.NodeProto], alias: dict[str, str]) -> None:
    """``graph`` reduced to ``remaining``; every reader of a dropped output reads its ``alias`` instead."""
    remaining = [onnx.NodeProto.FromString(node.SerializeToString()) for node in remaining]
    for node in remaining:
        _rewrite_inputs(node, alias)
    for item in graph.output:
        item.name = alias.get(item.name, item.name)
    del graph.node[:]
    graph.node.extend(remaining)


def _rewrite_inputs(node: onnx.NodeProto, alias: dict[str, str]) -> None:
    """Inputs of ``node`` and of every node in its subgraphs renamed through ``alias``."""
    node.input[:] = [alias.get(name, name) for name in node.input]
    for attribute in node.attribute:
        for graph in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)):
            for inner in graph.node:
                _rewrite_inputs(inner, alias)
            for item in graph.output:
                item.name = alias.get(item.name, item.name)


def _canonicalise_graph(graph: onnx.GraphProto, outer_signatures: dict[str, str], outer_names: dict[str, str],
                        prefix: str, main: bool) -> None:
    _drop_identities(graph, main)
    _merge_duplicates(graph, outer_signatures, main)
    signatures, tensor = _node_signatures(graph, outer_signatures, main)
    order = _topological_order(graph, signatures)
    names = dict(outer_names)
    if not main:
        names.update({item.name: f"{prefix}i{k}" for k, item in enumerate(graph.input)})
    keep = {i.name for i in graph.input} | {o.name for o in graph.output} if main else set()
    nodes = [graph.node[i] for i in order]
    initializers = {init.name: init for init in graph.initializer}
    used = []
    for position, node in enumerate(nodes):
        for name in _all_inputs(node):
            if name in initializers and name not in names:
                names[name] = f"{prefix}w{len(used)}"
                used.append(initializers[name])
        for index, output in enumerate(node.output):
            if output and output not in keep:
                names[output] = f"{prefix}t{position}_{index}"
    for position, node in enumerate(nodes):
        node.name = f"{prefix}n{position}_{node.op_type}"
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
        for k, attribute in enumerate(node.attribute):
            subgraphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
            for m, subgraph in enumerate(subgraphs):
                _canonicalise_graph(subgraph, tensor, names, f"{node.name}_g{k}{m}_", main=False)
    if not main:
        for item in graph.input:
            item.name = names[item.name]
    for item in graph.output:
        item.name = names.get(item.name, item.name)
    for init in used:
        init.name = names[init.name]
    unused = sorted((init for name, init in initializers.items() if name not in names),
                    key=lambda t: _digest(t.SerializeToString()))
    rebuilt_nodes = [onnx.NodeProto.FromString(node.SerializeToString()) for node in nodes]
    rebuilt_inits = [onnx.TensorProto.FromString(init.SerializeToString()) for init in used + unused]
    del graph.node[:]
    graph.node.extend(rebuilt_nodes)
    del graph.initializer[:]
    graph.initializer.extend(rebuilt_inits)
    del graph.value_info[:]
