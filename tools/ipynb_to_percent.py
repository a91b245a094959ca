"""Write a percent-format script from a notebook, the inverse of ``percent_to_ipynb.py``.

    python tools/ipynb_to_percent.py notebooks/NN_name.ipynb src.py

Edit the script, then convert it back. Outputs are dropped; tags are kept in the cell header.
"""
from __future__ import annotations

import json
import sys


def convert(nb: dict) -> str:
    out = []
    for c in nb["cells"]:
        src = "".join(c["source"])
        tags = c.get("metadata", {}).get("tags") or []
        tag = f" tags={json.dumps(tags)}" if tags else ""
        if c["cell_type"] == "markdown":
            out.append(f"# %% [markdown]{tag}\n" + "\n".join(("# " + ln) if ln else "#" for ln in src.splitlines()))
        else:
            out.append(f"# %%{tag}\n{src}")
    return "\n\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        text = convert(json.load(f))
    with open(sys.argv[2], "w") as f:
        f.write(text)
