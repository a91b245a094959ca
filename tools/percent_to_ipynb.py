"""Write a notebook from a percent-format script (``# %%`` code cells, ``# %% [markdown]`` cells).

    python tools/percent_to_ipynb.py src.py notebooks/NN_name.ipynb

A cell header may carry tags: ``# %% tags=["parameters"]``. Markdown lines drop their leading
``# ``. The notebook is written stripped (no outputs), with the ``python3`` kernelspec.
Authors can keep the script outside the repo; the .ipynb is the source of truth in git.
"""
from __future__ import annotations

import json
import re
import sys

import nbformat


def convert(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    cells, cur, kind, tags = [], [], None, []

    def flush():
        if kind is None:
            return
        src = "\n".join(cur).strip("\n")
        if kind == "markdown":
            src = "\n".join(re.sub(r"^# ?", "", ln) for ln in src.splitlines())
            cell = nbformat.v4.new_markdown_cell(src)
        else:
            cell = nbformat.v4.new_code_cell(src)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.splitlines():
        m = re.match(r"^# %%(.*)$", line)
        if m:
            flush()
            rest = m.group(1)
            kind = "markdown" if "[markdown]" in rest else "code"
            t = re.search(r"tags=(\[.*?\])", rest)
            tags = json.loads(t.group(1)) if t else []
            cur = []
        else:
            cur.append(line)
    flush()
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i:03d}"
    nb.cells = cells
    return nb


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    nbformat.write(convert(open(src).read()), dst)
    print(f"wrote {dst}")
