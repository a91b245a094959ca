"""Command-line options from dataclasses: one ``--field`` per field, its help from the field's docstring.

The training CLIs (``train sft``, ``train align-gen|align-scalar``) and the memory planner
(``plan``) build their options this way, so a config field and its flag cannot drift apart.
"""
from __future__ import annotations

import argparse
import ast
import inspect
from dataclasses import MISSING, fields


def field_docs(cls) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    out = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(getattr(b, "value", None), ast.Constant) and isinstance(b.value.value, str):
            out[a.target.id] = " ".join(b.value.value.split()).replace("%", "%%")  # argparse formats help
    return out



def add_dataclass_args(p: argparse.ArgumentParser, cls) -> None:
    """One ``--field`` option per dataclass field; help from its docstring; default None (= preset's)."""
    docs = field_docs(cls)
    for f in fields(cls):
        kind = {int: int, float: float, "int": int, "float": float}.get(f.type, None)
        t = str(f.type)
        if kind is None:
            kind = int if t.startswith("int") else float if t.startswith("float") else str
        if t == "bool" or f.type is bool:  # the CLI's one boolean style: --flag / --no-flag
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                           action=argparse.BooleanOptionalAction, help=docs.get(f.name, ""))
        else:
            default = f.default if f.default is not MISSING else None
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, type=kind,
                           help=f"{docs.get(f.name, '')} (default: {default})")
