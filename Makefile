# Set-up and test entry points. Works on a fresh Debian 12 machine as root.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := fuse3 libfuse3-dev pkg-config gddrescue e2fsprogs fdisk mtools dosfstools exfatprogs exfat-fuse ntfs-3g testdisk xfsprogs btrfs-progs cryptsetup-bin lvm2 chromium chromium-driver python3 python3-venv python3-dev gcc util-linux strace
PYTEST_ARGS ?=

.PHONY: system-deps install demo test test-long lint bench clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# compat: the checkout goes on sys.path by a plain .pth line; the default editable mode's
	# import hook costs every ddfs start about 10 ms (it imports pathlib)
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

MAN_DIR := /usr/local/share/man/man1

install: system-deps $(VENV)/.installed
	@# man ddfs, man ddfs-rescue, ...: generated from the commands' --help
	$(PY) -m ddfs.commands.manpage $(MAN_DIR) > /dev/null
	-mandb -q 2>/dev/null

demo: install
	$(VENV)/bin/ddfs demo

test: install lint
	$(PY) -m pytest -m "not long" $(PYTEST_ARGS)

test-long: install
	$(PY) -m pytest -m long $(PYTEST_ARGS)

# style (ruff), the layering contracts (import-linter, in pyproject.toml) and the types (mypy)
lint: install
	$(VENV)/bin/ruff check ddfs engine tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
