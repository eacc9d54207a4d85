"""Names that address a part of a branch: a leaf of a leaf-list branch, a subfield of an RNTuple record, an
element of a fixed-size array.

- ``pv.z``: ``t->Branch("pv", &pv, "x/F:y/F:z/F:ndof/I")`` makes one branch of four leaves, which uproot reads as a
  record (older ntuples fill their structs so); in an RNTuple, ``pv.z`` is the subfield of the record field ``pv``.
- ``B_OWNPV_COV_[0][1]``: an element of a ``Float_t[3][3]`` per entry (LHCb's DecayTreeTuple covariances), as
  ``TTree::Draw`` names it.
- ``vetoPoint.fLpos[][2]``: component 2 of the ``Double_t fLpos[3]`` of every object (FairShip's points; uproot
  names that branch ``vetoPoint.fLpos[3]``). As in ``TTree::Draw``, the first ``[]`` stands for the objects:
  ``fLpos[2]`` would be the third object's array, so a per-object array needs the ``[]`` and a per-entry one
  must not have it.

A branch that has the name itself always wins (a split object's ``trk.pt``). The reader reads the whole
branch once and hands each part on as a field of its own (``with_parts``), so flattening sees plain numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import awkward as ak
import uproot

from pipeline_steps.common.errors import InputError

_INDEX = re.compile(r"(\[\d*\])+$")


@dataclass(frozen=True)
class BranchPart:
    """The branch to read and, within each value, the leaf or subfield path, or the element's indices."""

    branch: str
    leaf: str | None = None
    index: tuple[int, ...] = ()
    per_object: bool = False  # spelled with a leading ``[]``

    def take(self, values: ak.Array, name: str, where: str) -> ak.Array:
        if self.leaf is not None:
            for field in self.leaf.split("."):
                values = values[field]
            if not self.index:
                return values
        dims = fixed_dims(values)
        jagged = values.ndim > len(dims) + 1
        if jagged != self.per_object or len(dims) != len(self.index) or any(i >= n for i, n in zip(self.index, dims)):
            raise InputError(f"{where}: {name!r} names no element of branch {self.branch!r}, which holds "
                             f"{_shape(dims, jagged)}; {_first_element(self.branch, dims, jagged)!r} is its first")
        return values[(Ellipsis, *self.index)]


def is_ttree(tree) -> bool:
    """A TTree (branches, leaves, count leaves) rather than an RNTuple (fields) of the same name."""
    return isinstance(tree, uproot.behaviors.TBranch.HasBranches)


def branch_names(tree) -> list[str]:
    """Every name a branch of ``tree`` can be read by: its own, and its full path where it is nested (a TTree's
    split branches); an RNTuple's fields by their full paths only (``pv.z``, not ``z``)."""
    if not is_ttree(tree):
        return list(tree.keys())
    return list(dict.fromkeys([*tree.keys(full_paths=False), *tree.keys()]))


def branch_parts(tree, names: list[str], branches: list[str]) -> dict[str, BranchPart]:
    """{requested name: BranchPart} for the names in ``branches`` that are a part of a branch of ``tree``, whose
    ``branch_names`` are ``names``."""
    rntuple = not is_ttree(tree)
    parts = {}
    for name in branches:
        part = (_subfield(names, name) if rntuple else None) if name in names else _part(tree, names, name)
        if part is not None and rntuple and "." in part.branch:  # seg.dir[1]: read nested under the field seg
            top, _, path = part.branch.partition(".")
            part = BranchPart(top, leaf=".".join(filter(None, [path, part.leaf])), index=part.index,
                              per_object=part.per_object)
        if part is not None:
            parts[name] = part
    return parts


def part_base(name: str, names) -> str | None:
    """The branch among ``names`` that ``name`` would be a part of, or None (no TTree metadata needed)."""
    suffix = _INDEX.search(name)
    if suffix is not None:
        base = name[:suffix.start()]
        return next((n for n in names if n == base or (n.startswith(base) and _INDEX.fullmatch(n[len(base):]))), None)
    branch = name.rpartition(".")[0]
    return branch if branch in names else None


def branches_to_read(branches: list[str], parts: dict[str, BranchPart]) -> list[str]:
    """``branches`` with each part replaced by its branch, read once."""
    return list(dict.fromkeys(parts[name].branch if name in parts else name for name in branches))


def with_parts(arrays: ak.Array, parts: dict[str, BranchPart], where: str) -> ak.Array:
    """``arrays`` with a field per requested part, taken from its branch (no copy)."""
    for name, part in parts.items():
        arrays = ak.with_field(arrays, part.take(arrays[part.branch], name, where), name)
    return arrays


def whole_branch_problem(values: ak.Array, branch: str) -> str | None:
    """Why ``values`` of ``branch`` are not one number per entry or object, with the name of a part to give."""
    fields = ak.fields(values)
    if fields:
        return f"branch {branch!r} holds several leaves {fields}; name one as ROOT does, {branch + '.' + fields[0]!r}"
    dims = fixed_dims(values)
    if dims:
        jagged = values.ndim > len(dims) + 1
        return (f"branch {branch!r} holds {_shape(dims, jagged)}; name one element as ROOT does, "
                f"{_first_element(branch, dims, jagged)!r}")
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


def _shape(dims: tuple[int, ...], jagged: bool) -> str:
    if not dims:
        return f"one value per {'object' if jagged else 'entry'}"
    return f"a fixed-size array of {' x '.join(map(str, dims))} values per {'object' if jagged else 'entry'}"


def _first_element(branch: str, dims: tuple[int, ...], jagged: bool) -> str:
    return _INDEX.sub("", branch) + ("[]" if jagged else "") + "[0]" * len(dims)


def _subfield(names: list[str], name: str) -> BranchPart | None:
    """An RNTuple subfield ``pv.z``: uproot reads it nested in its top-level field ``pv``."""
    top, _, path = name.partition(".")
    return BranchPart(top, leaf=path) if path and top in names else None


def _part(tree, names: list[str], name: str) -> BranchPart | None:
    suffix = _INDEX.search(name)
    if suffix is None:
        return _leaf(tree, names, name)
    index = re.findall(r"\[(\d*)\]", suffix.group())
    per_object = index[0] == ""
    index = index[1:] if per_object else index
    if not index or "" in index:
        return None
    element = {"index": tuple(int(i) for i in index), "per_object": per_object}
    base = part_base(name, names)
    if base is not None:
        return BranchPart(base, **element)
    leaf = _leaf(tree, names, name[:suffix.start()])  # s.x[0]: an element of the leaf x[3]/F of a leaf-list s
    return None if leaf is None else BranchPart(leaf.branch, leaf=leaf.leaf, **element)


def _leaf(tree, names: list[str], name: str) -> BranchPart | None:
    branch, _, leaf = name.rpartition(".")
    return BranchPart(branch, leaf=leaf) if branch in names and leaf in _leaf_names(tree[branch]) else None


def _leaf_names(branch) -> list[str]:
    leaves = branch.member("fLeaves") if hasattr(branch, "member") else []
    return [leaf.member("fName") for leaf in leaves] if len(leaves) > 1 else []
