# The README's two commands:
#   make demo   set-up, MNIST, the classic example trained (20 epochs), its figure and metrics
#   make test   set-up, then the test suite
# Set-up is a virtual environment in .venv: torch==2.13.0 first (a bare torch requirement would pull
# several GB of CUDA packages), then aekit itself in editable mode with its dev tools.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN    := runs/classic

.PHONY: setup browser demo test mutation figures pretrained bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The report's test opens it in a real browser: Debian's chromium, installed where it is missing (as root).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium (apt-get install chromium, as root): the report's browser tests will fail"

demo: setup
	$(BIN)/aekit data fetch mnist
	$(BIN)/aekit train --data mnist --model ae --hidden 128,64 --latent-dim 32 --epochs 20 --batch-size 256 \
		--lr 1e-3 --seed 0 --out $(RUN) --force
	$(BIN)/aekit evaluate $(RUN)
	$(BIN)/aekit reconstruct $(RUN) -o $(RUN)/reconstructions.png -n 10 --force
	@echo "figure: $(RUN)/reconstructions.png  loss curve: $(RUN)/loss_curve.png  metrics: $(RUN)/metrics.json"

test: setup browser
	$(BIN)/python -m pytest -m "slow or not slow" --durations=20   # everything, the 20 slowest named; a plain pytest skips the slow ones

# Mutation testing of the modules that guard users' data and files ([tool.mutmut] in pyproject.toml): each small
# change to their code that no test notices is listed at the end (the count: docs/benchmarks.md, "Test suite").
mutation: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check mutmut==3.8.1
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# Every figure of the guide (docs/guide.md, docs/guide.ko.md) from nothing: about 8 minutes on 2 cores.
figures: setup
	$(BIN)/python docs/figures.py

# The trained models that ship inside the package (src/aekit/pretrained/), trained again from scikit-image's photos
# and measured on held-out ones (on a 2-core CPU: the denoiser 30 minutes, the codec's four levels two at a time,
# 30 minutes each, an hour in all; BM3D is a baseline of the measurement).
pretrained: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check bm3d
	$(BIN)/python bench/pretrained.py

# Every benchmark in docs/benchmarks.md, one after another (about 6 hours on 2 cores). The peer libraries they
# compare with (Pythae, PyOD) and BM3D are installed here only, next to torch 2.13.0 (scikit-image comes with dev).
bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pythae pyod bm3d
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/sparse.py
	$(BIN)/python bench/denoise.py
	$(BIN)/python bench/conv_ae.py
	$(BIN)/python bench/vae_nll.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/compress.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/anomaly.py
	$(BIN)/python bench/large_npy.py
	$(BIN)/python bench/small_data.py
	$(BIN)/python bench/photos.py
	$(BIN)/python bench/readme.py
	$(BIN)/python bench/tables.py --held-out
	$(BIN)/python bench/gpu_speed.py

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
