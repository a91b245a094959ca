# Every target sets up .venv itself when it is missing, and does nothing extra when it is there.
# Windows users without make: see the README for the plain `python -m longrm_utils ...` equivalents.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.longrm-installed
PROFILE ?= cpu
OUT    ?= runs/$(PROFILE)

# The CPU profiles and the tests never reach a model hub (huggingface_hub reads this at import
# time). GPU profiles (make course PROFILE=gpu-qlora-24gb) are left online.
ifneq (,$(filter cpu%,$(PROFILE)))
export HF_HUB_OFFLINE := 1
endif
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: course test lint report lab setup clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m longrm_utils setup
	touch $(STAMP)

setup: $(STAMP)

course: $(STAMP)
	$(PY) -m longrm_utils course --profile $(PROFILE) --out $(OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -ra --durations=25 tests

report: $(STAMP)
	$(PY) -m longrm_utils report --run $(OUT) --out docs/results

# Containers run as root, which JupyterLab refuses without --allow-root.
lab: $(STAMP)
	$(PY) -m jupyter lab notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean-venv:
	rm -rf $(VENV)
