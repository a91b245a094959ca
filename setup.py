"""Ship the course with the package: a wheel carries the notebooks, profiles and data.

pyproject.toml holds all metadata; this file only adds one build step. ``build_py`` copies
``notebooks/``, ``configs/`` and ``data/`` into ``longrm_utils/_course/`` of the build (and, of
``docs/results/``, only the committed runs' ``lessons.json`` and the predictions they cite, which
notebooks show for lessons their profile does not measure), so that
``pip install longrm-course`` followed by ``longrm course --profile cpu`` works outside a checkout
(``longrm_utils.constants.REPO_ROOT`` points there when no checkout surrounds the package). An
editable install reads them from the checkout and copies nothing.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COURSE_DIRS = ("notebooks", "configs", "data")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
RESULTS_SKIP = shutil.ignore_patterns("*.html", "*.md", "*.png", "figures")


class BuildWithCourse(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "longrm_utils" / "_course"
        for d in COURSE_DIRS:
            if (dest / d).exists():
                shutil.rmtree(dest / d)
            shutil.copytree(root / d, dest / d, ignore=SKIP)
        results = dest / "docs" / "results"
        if results.exists():
            shutil.rmtree(results)
        shutil.copytree(root / "docs" / "results", results, ignore=RESULTS_SKIP)


setup(cmdclass={"build_py": BuildWithCourse})
