"""Render a run directory for readers who don't run anything: ``python -m longrm_utils report``.

Writes ``docs/results/`` (summary, figures, executed notebooks as HTML, the run's ``lessons.json`` with
the predictions it cites, an index page) and rewrites
the README's course map from the run's measured ``summary.json``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .cli import ArgumentParser, add_flag
from .constants import COURSE_MAP, NOTEBOOKS, PROFILE_DIR, REPO_ROOT
from .contracts import LESSONS as LESSONS_FILE
from .io import read_json
from .store import cache_root

MAP_START, MAP_END = "<!-- course-map:start -->", "<!-- course-map:end -->"
SITE_PACKAGES = re.compile(r"(?:[~.]|/[^\s\"'<>]*)?/(?:lib/python[\d.]+/)?site-packages/")


def gpu_needs(stem: str) -> str:
    """What the GPU profiles say about a notebook: profile name and its hardware line."""
    out = []
    for name in ("gpu-qlora-24gb", "gpu-qlora-80gb", "gpu-full-80gb"):
        p = PROFILE_DIR / f"{name}.yaml"
        if p.exists():
            hw = (yaml.safe_load(p.read_text()) or {}).get("hardware") or {}
            need = (hw.get("memory_by_notebook") or {}).get(stem)
            out.append(f"`{name}`: {need or str(hw.get('gpus', '?')) + '×' + str(hw.get('gpu_memory_gib', '?')) + ' GB'}")
    return "; ".join(out)


def course_map(summary: dict | None) -> str:
    walls = {r["notebook"]: r for r in (summary or {}).get("notebooks", [])}
    lines = ["| NN | notebook | what you learn | CPU-default wall time (measured) | GPU profile and the memory it needs |",
             "|---|---|---|---|---|"]
    for stem in NOTEBOOKS:
        if not (REPO_ROOT / "notebooks" / f"{stem}.ipynb").exists():
            continue
        title, learn = COURSE_MAP[stem]
        r = walls.get(stem)
        wall = f"{r['wall_s'] / 60:.1f} min" + (" (over budget)" if r.get("over_budget") else "") if r else "not yet measured"
        lines.append(f"| {stem[:2]} | [{title}](notebooks/{stem}.ipynb) | {learn} | {wall} | {gpu_needs(stem)} |")
    if summary:
        lines.append("")
        lines.append(f"Total: {summary['total_wall_s'] / 60:.1f} min on the `{summary['profile']}` profile.")
    return "\n".join(lines)


def update_readme(summary: dict | None, readme: Path = REPO_ROOT / "README.md") -> bool:
    text = readme.read_text()
    if MAP_START not in text or MAP_END not in text:
        raise ValueError(f"{readme} has no {MAP_START} ... {MAP_END} block")
    head, rest = text.split(MAP_START, 1)
    _, tail = rest.split(MAP_END, 1)
    new = f"{head}{MAP_START}\n{course_map(summary)}\n{MAP_END}{tail}"
    changed = new != text
    readme.write_text(new)
    return changed


def relative_paths(text: str, run: Path, profile: str) -> str:
    """``text`` with the machine's own folders replaced: the run directory by ``runs/<profile>``, the
    checkout by ``.``, the model cache by ``$LONGRM_CACHE`` and the home folder by ``~``, so that
    rendered pages name no absolute scratch path."""
    subs = [(str(Path(run).resolve()), f"runs/{profile}"), (str(REPO_ROOT), "."),
            (str(cache_root()), "$LONGRM_CACHE"), (str(Path.home()), "~")]
    for old, new in sorted(subs, key=lambda kv: -len(kv[0])):
        if old and old not in ("/", "."):
            text = text.replace(old, new)
    # library paths in warnings, wherever the producing run's environment lived
    return SITE_PACKAGES.sub("site-packages/", text)


def copy_lessons(run: Path, out: Path) -> list[str]:
    """Copy the run's ``lessons.json`` and every prediction file its entries cite to ``out``, at the
    same relative paths, so that each lesson can be re-measured from the committed files; returns
    the copied prediction paths (none when the run has no lessons)."""
    src = Path(run) / LESSONS_FILE
    if not src.is_file():
        return []
    cited = sorted({e[side]["predictions"] for e in read_json(src)["lessons"] for side in ("before", "after")})
    for rel in cited:
        (Path(out) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(run) / rel, Path(out) / rel)
    shutil.copy(src, Path(out) / LESSONS_FILE)
    return cited


def render(run: Path, out: Path, html: bool = True, max_figure_kb: int = 400) -> Path:
    """Copy summary and figures, export executed notebooks to HTML, and write an index page. Paths of
    this machine are rewritten run- or repo-relative (:func:`relative_paths`)."""
    run, out = Path(run), Path(out)
    if not (run / "summary.json").exists():
        raise FileNotFoundError(f"{run} has no summary.json: run the course first (make course)")
    summary = read_json(run / "summary.json")
    out.mkdir(parents=True, exist_ok=True)
    rel = lambda text: relative_paths(text, run, summary["profile"])  # noqa: E731
    (out / "summary.md").write_text(rel((run / "summary.md").read_text()))
    figs = out / "figures"
    shutil.rmtree(figs, ignore_errors=True)
    figs.mkdir()
    copied = []
    for png in sorted(run.rglob("*.png")):
        if png.stat().st_size <= max_figure_kb * 1024:
            dst = figs / "__".join(png.relative_to(run).parts)
            shutil.copy(png, dst)
            copied.append(dst.name)
    pages = []
    if html:
        from nbconvert import HTMLExporter

        exp = HTMLExporter()
        for stem in NOTEBOOKS:
            nb = run / f"{stem}.ipynb"
            if nb.exists():
                body, _ = exp.from_filename(str(nb))
                (out / f"{stem}.html").write_text(rel(body))
                pages.append(stem)
    cited = copy_lessons(run, out)
    prof, ran = summary["profile"], [r["notebook"] for r in summary["notebooks"]]
    only = f" --only {','.join(n[:2] for n in ran)}" if len(ran) < len(NOTEBOOKS) else ""
    again = ("make course && make report" if prof == "cpu" and not only else
             f"python -m longrm_utils course --profile {prof} --out runs/{prof}{only} && "
             f"python -m longrm_utils report --run runs/{prof} --out docs/results{'' if prof == 'cpu' else '/' + prof} --no-readme")
    part = (f" This run executed {len(ran)} of the {len(NOTEBOOKS)} notebooks ({', '.join(ran)}); the others' "
            "pages are not here." if only else "")
    lines = [f"# Results of the last `{prof}` course run", "",
             f"Profile `{prof}`, total {summary['total_wall_s'] / 60:.1f} min.{part} Regenerate with `{again}`.", "",
             "## Summary", "", (run / "summary.md").read_text().split("\n", 2)[-1], "",
             "## Executed notebooks", ""]
    lines += [f"- [{s}]({s}.html)" for s in pages] or ["(HTML export skipped)"]
    if cited:
        lines += ["", f"`{LESSONS_FILE}` and the {len(cited)} prediction files its lessons cite are copied beside "
                  "this page, at the paths the entries name."]
    lines += ["", "## Figures", ""] + [f"![{n}](figures/{n})" for n in copied]
    (out / "index.md").write_text(rel("\n".join(lines) + "\n"))
    return out / "index.md"


def cli(argv: list[str]) -> int:
    p = ArgumentParser(prog="longrm_utils report", description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/cpu", help="the run directory to render")
    p.add_argument("--out", default="docs/results", help="where to write the pages")
    add_flag(p, "html", default=True, help="export the executed notebooks to HTML with nbconvert")
    add_flag(p, "readme", default=True, help="update the README's course map from the run's summary")
    a = p.parse_args(argv)
    idx = render(Path(a.run), Path(a.out), html=a.html)
    if a.readme:
        update_readme(read_json(Path(a.run) / "summary.json"))
    print(f"wrote {idx}")
    return 0
