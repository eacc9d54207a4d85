"""Names that address a part of a branch, as ``TTree::Draw`` spells them: a leaf of a leaf-list branch, an
element of a fixed-size array.

- ``pv.z``: ``t->Branch("pv", &pv, "x/F:y/F:z/F:ndof/I")`` makes one branch of four leaves, which uproot reads as a
  record; older ntuples fill their structs so.
- ``B_OWNPV_COV_[0][1]``: a ``Float_t[3][3]`` per entry (LHCb's DecayTreeTuple covariances), and per object
  ``vetoPoint.fLpos[1]`` for the branch ``vetoPoint.fLpos[3]`` (a ``Double_t[3]`` member of FairShip's points;
  uproot keeps the dimensions in such a branch's name).

A branch that has the name itself always wins (a split object's ``trk.pt``). The reader reads the whole
branch once and hands each part on as a field of its own (``with_parts``), so flattening sees plain numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import awkward as ak

from pipeline_steps.common.errors import InputError
from pipeline_steps.ingest.reader import branch_names

_INDEX = re.compile(r"(\[\d+\])+$")


@dataclass(frozen=True)
class BranchPart:
    """The branch to read, and the leaf (leaf-list) or the indices (fixed-size array) of the part named."""

    branch: str
    leaf: str | None = None
    index: tuple[int, ...] = ()

    def take(self, values: ak.Array) -> ak.Array:
        return values[self.leaf] if self.leaf is not None else values[(Ellipsis, *self.index)]


def branch_parts(tree, branches: list[str], where: str) -> dict[str, BranchPart]:
    """{requested name: BranchPart} for the names in ``branches`` that are no branch but a part of one."""
    names = branch_names(tree)
    parts = {}
    for name in branches:
        if name in tree:
            continue
        part = _leaf(tree, name) or _element(tree, names, name, where)
        if part is not None:
            parts[name] = part
    return parts


def branches_to_read(branches: list[str], parts: dict[str, BranchPart]) -> list[str]:
    """``branches`` with each part replaced by its branch, read once."""
    return list(dict.fromkeys(parts[name].branch if name in parts else name for name in branches))


def with_parts(arrays: ak.Array, parts: dict[str, BranchPart]) -> ak.Array:
    """``arrays`` with a field per requested part, taken from its branch (no copy)."""
    for name, part in parts.items():
        arrays = ak.with_field(arrays, part.take(arrays[part.branch]), name)
    return arrays


def whole_branch_problem(values: ak.Array, branch: str) -> str | None:
    """Why ``values`` of ``branch`` are not one number per entry or object, with the name of a part to give."""
    fields = ak.fields(values)
    if fields:
        return f"branch {branch!r} holds several leaves {fields}; name one as ROOT does, {branch + '.' + fields[0]!r}"
    dims = fixed_dims(values)
    if dims:
        first = _INDEX.sub("", branch) + "[0]" * len(dims)
        return (f"branch {branch!r} holds a fixed-size array of {' x '.join(map(str, dims))} values per "
                f"{'object' if values.ndim > len(dims) + 1 else 'entry'}; name one element as ROOT does, {first!r}")
    return None


def fixed_dims(values: ak.Array) -> tuple[int, ...]:
    """The fixed dimensions inside one entry (or one object of a jagged branch): (3, 3) for ``Float_t[3][3]``."""
    content = values.type.content
    if isinstance(content, ak.types.ListType):
        content = content.content
    dims = []
    while isinstance(content, ak.types.RegularType):
        dims.append(content.size)
        content = content.content
    return tuple(dims)


def _leaf(tree, name: str) -> BranchPart | None:
    branch, _, leaf = name.rpartition(".")
    if branch in tree and leaf in _leaf_names(tree[branch]):
        return BranchPart(branch, leaf=leaf)
    return None


def _leaf_names(branch) -> list[str]:
    leaves = branch.member("fLeaves") if hasattr(branch, "member") else []
    return [leaf.member("fName") for leaf in leaves] if len(leaves) > 1 else []


def _element(tree, names: list[str], name: str, where: str) -> BranchPart | None:
    """``base[i][j]`` of a branch named ``base`` or ``base[n][m]`` with as many fixed dimensions."""
    suffix = _INDEX.search(name)
    if suffix is None:
        return None
    base = name[:suffix.start()]
    index = tuple(int(i) for i in re.findall(r"\d+", suffix.group()))
    for candidate in names:
        if candidate != base and not (candidate.startswith(base) and _INDEX.fullmatch(candidate[len(base):])):
            continue
        shape = _inner_shape(tree[candidate])
        if shape is None:
            continue  # an RNTuple field: its elements are not addressed here, so the name is reported missing
        if len(shape) != len(index) or any(i >= n for i, n in zip(index, shape)):
            raise InputError(f"{where}: {name!r} names element {list(index)} of branch {candidate!r}, which holds "
                             f"{' x '.join(map(str, shape)) or 'one'} value(s) per entry or object")
        return BranchPart(candidate, index=index)
    return None


def _inner_shape(branch) -> tuple[int, ...] | None:
    """A TTree branch's fixed dimensions per value; None for an RNTuple's field, which has no interpretation."""
    interpretation = getattr(branch, "interpretation", None)
    if interpretation is None:
        return None
    interpretation = getattr(interpretation, "content", interpretation)  # AsJagged -> its AsDtype
    return tuple(getattr(interpretation, "inner_shape", ()) or ())
