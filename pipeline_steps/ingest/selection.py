"""Safe evaluation of selection strings such as ``(abs(pdgId) == 13) & (status == 1)``.

Selections come from a config file someone else may have written, so they are never passed to
``eval``: the string is parsed with :mod:`ast` and only a whitelist of node types (comparisons,
arithmetic, ``and``/``or``/``not``, ``& | ^ ~``, numeric constants, column names and a few numpy
functions) is interpreted, element-wise over numpy arrays. Anything else is a ConfigError.

``& | ^ ~`` mean what they mean in numpy: logical on true/false values (``(pt > 20) & (abs(eta) < 2.4)``)
and bit-wise on integers (NanoAOD's ID bits: ``(jetId & 2) != 0``). They had been logical on anything,
so ``(jetId & 2) != 0`` kept jetId 4 as well; an integer and a true/false value in one ``&`` is refused,
because either reading could be meant. Integer columns of up to 32 bits (uint8 ``jetId``, uint32
``nStations``) are widened to int64 before arithmetic, so ``nhits - 1 < 0`` or ``jetId * 50 > 100`` do
not wrap around in the branch's own type; uint64 (event numbers) stays as it is, since int64 cannot hold
it and float64 would round it (``event % 2 == 0`` must stay exact).

A dotted name (``trk.pt > 1``, ``event.nTracks``) is one column name, as ROOT's split branches and
TTree::Draw spell them: Python reads it as attribute access, which had been refused as not allowed. It is
only ever looked up as that string among the columns, never evaluated as an attribute. Like any name in a
selection it is a whole field (a flat tree's branch, or a collection's field after its prefix) or event
field. A part that is a Python keyword (``evt.class``, ``trk.lambda``) cannot be parsed: rename such a
branch upstream.
"""

from __future__ import annotations

import ast
import difflib
import operator
from typing import Callable, Mapping

import numpy as np

from pipeline_steps.common.errors import ConfigError

FUNCTIONS: dict[str, Callable] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "log": np.log,
    "log10": np.log10,
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arctan2": np.arctan2,
    "hypot": np.hypot,
    "isnan": np.isnan,
    "isfinite": np.isfinite,
}

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
# operator -> (symbol, its logical form for true/false values, its bit-wise form for integers)
_BITWISE = {
    ast.BitAnd: ("&", np.logical_and, np.bitwise_and),
    ast.BitOr: ("|", np.logical_or, np.bitwise_or),
    ast.BitXor: ("^", np.logical_xor, np.bitwise_xor),
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: np.logical_not}


def parse_selection(expression: str) -> ast.Expression:
    """Parse and check ``expression`` against the whitelist; ConfigError naming the bad part."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ConfigError(f"selection {expression!r}: not a valid expression ({error.msg})") from None
    for node in ast.walk(tree):
        _check_node(node, expression)
    return tree


def selection_names(expression: str) -> list[str]:
    """Column names an expression reads (function names excluded), in first-use order."""
    tree = parse_selection(expression)
    functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    inside_dotted = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))
             and id(n) not in functions and id(n) not in inside_dotted]
    names = [_dotted_name(n) for n in sorted(nodes, key=lambda n: (n.lineno, n.col_offset))]
    return list(dict.fromkeys(names))


def _dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name (a dotted column name), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def evaluate_selection(expression: str, columns: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    """Boolean mask of length ``n_rows``: True where the row passes ``expression``.

    ``columns`` maps names to 1-D arrays of length ``n_rows``. An unknown name is a ConfigError
    listing close matches among the available columns.
    """
    tree = parse_selection(expression)
    try:
        with np.errstate(all="ignore"):  # log(0), 0/0: -inf and nan fail comparisons, as they would in ROOT
            value = _Evaluator(expression, columns).visit(tree.body)
    except ConfigError:  # a ValueError too: said once, not wrapped in the message below
        raise
    except (TypeError, ValueError, OverflowError) as error:  # numpy's: a float in a bit-wise &, a literal out of range
        raise ConfigError(f"selection {expression!r}: cannot be evaluated on these columns ({error})") from None
    mask = np.broadcast_to(np.asarray(value), (n_rows,))
    if mask.dtype != np.bool_:
        hint = "; a bit test reads (jetId & 2) != 0" if mask.dtype.kind in "iu" else ""
        raise ConfigError(f"selection {expression!r}: expected a true/false result per row, got {mask.dtype} values{hint}")
    return np.array(mask, dtype=bool)


def _check_node(node: ast.AST, expression: str) -> None:
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.BinOp, ast.Compare, ast.Name,
        ast.Load, ast.Constant, ast.Call, ast.Invert, *_BINARY, *_BITWISE, *_COMPARE, *_UNARY,
    )
    if isinstance(node, ast.Attribute) and _dotted_name(node) is not None:
        return
    if not isinstance(node, allowed):
        raise ConfigError(f"selection {expression!r}: {type(node).__name__} is not allowed in a selection")
    if isinstance(node, ast.Constant) and (isinstance(node.value, str) or not isinstance(node.value, (int, float, bool))):
        raise ConfigError(f"selection {expression!r}: only numeric constants are allowed, got {node.value!r}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ConfigError(
                f"selection {expression!r}: only calls of {sorted(FUNCTIONS)} with positional arguments are allowed"
            )


class _Evaluator(ast.NodeVisitor):
    def __init__(self, expression: str, columns: Mapping[str, np.ndarray]):
        self.expression = expression
        self.columns = columns

    def visit_Name(self, node: ast.Name):
        return self._column(node.id)

    def visit_Attribute(self, node: ast.Attribute):
        return self._column(_dotted_name(node))  # parse_selection let only dotted names through

    def _column(self, name: str):
        if name not in self.columns:
            close = difflib.get_close_matches(name, list(self.columns), n=3)
            hint = f"; close matches: {close}" if close else f"; available: {sorted(self.columns)}"
            raise ConfigError(f"selection {self.expression!r}: unknown column {name!r}{hint}")
        try:
            values = np.asarray(self.columns[name])
        except ValueError:  # a jagged awkward array (a sequence per jet) has no regular numpy form
            values = None
        if values is None or values.ndim != 1 or values.dtype == object:
            # a sequence's field had stopped ingestion in a numpy broadcasting traceback
            raise ConfigError(f"selection {self.expression!r}: {name!r} is not one value per row (a sequence's or "
                              f"another collection's branch): a selection reads the table's fields and event fields")
        return _widened(values)

    def visit_Constant(self, node: ast.Constant):
        return node.value

    def visit_Call(self, node: ast.Call):
        return FUNCTIONS[node.func.id](*(self.visit(arg) for arg in node.args))

    def visit_UnaryOp(self, node: ast.UnaryOp):
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Invert):
            kind = np.asarray(operand).dtype.kind
            if kind not in "biu":
                raise ConfigError(f"selection {self.expression!r}: '~' applies to true/false values or integers, "
                                  f"not to {np.asarray(operand).dtype} values")
            return np.logical_not(operand) if kind == "b" else np.invert(operand)
        return _UNARY[type(node.op)](operand)

    def visit_BinOp(self, node: ast.BinOp):
        left, right = self.visit(node.left), self.visit(node.right)
        if type(node.op) not in _BITWISE:
            return _BINARY[type(node.op)](left, right)
        symbol, logical, bitwise = _BITWISE[type(node.op)]
        kinds = {np.asarray(left).dtype.kind, np.asarray(right).dtype.kind}
        if kinds == {"b"}:
            return logical(left, right)
        if kinds <= {"i", "u"}:
            return bitwise(left, right)
        raise ConfigError(
            f"selection {self.expression!r}: '{symbol}' between {_kind_name(left)} and {_kind_name(right)}; it "
            f"combines two true/false values ((pt > 20) {symbol} (abs(eta) < 2.4)) or two integers bit by bit "
            f"((jetId & 2) != 0)"
        )

    def visit_BoolOp(self, node: ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = self.visit(node.values[0])
        for value in node.values[1:]:
            result = combine(result, self.visit(value))
        return result

    def visit_Compare(self, node: ast.Compare):
        left, result = self.visit(node.left), True
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
            left = right
        return result


def _widened(values: np.ndarray) -> np.ndarray:
    """Integers of up to 32 bits as int64 (see the module docstring); anything else unchanged."""
    if values.dtype.kind in "iu" and values.dtype.itemsize <= 4:
        return values.astype(np.int64)
    return values


def _kind_name(value) -> str:
    kind = np.asarray(value).dtype.kind
    return {"b": "true/false values", "i": "integers", "u": "integers", "f": "floats"}.get(kind, f"{np.asarray(value).dtype} values")
