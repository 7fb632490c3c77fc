#!/usr/bin/env bash
# `make test-compat` (part of `make test`): the package installed from its ranges, not the lock,
# where users already are: a fresh Python 3.12 venv that already has torch 2.11 (as Colab and
# common GPU images do). It runs the Colab set-up cell's own steps (cxrsr_utils/colab.py:
# `pip install <checkout>`, CXRSR_ROOT, the mirror), checks that the preinstalled torch was kept,
# then runs the fast tests and notebook 01 (quick profile) with that install. About 10 minutes
# on 2 cores, most of it downloads (pip's cache makes a second run quicker).
set -euo pipefail
cd "$(dirname "$0")/../.."

TORCH=2.11.0 TORCHVISION=0.26.0  # the "preinstalled" torch: the lowest the ranges allow
# A Python 3.12 that runs: $PY312, else pyenv's newest 3.12 (its shim fails unless 3.12 is
# selected), else python3.12 on the PATH.
find_py312() {
  local candidate
  for candidate in "${PY312:-}" $(ls -d "$(pyenv root 2>/dev/null)"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V -r) \
      "$(command -v python3.12 || true)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "test-compat: no Python 3.12 found (set PY312=/path/to/python3.12)" >&2; exit 1
}
PY312=$(find_py312)
VENV=${COMPAT_VENV:-.venv-py312}

rm -rf "$VENV"
"$PY312" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
"${PIP[@]}" install "torch==$TORCH" "torchvision==$TORCHVISION"
"$VENV/bin/python" cxrsr_utils/colab.py
"$VENV/bin/python" - "$TORCH" <<'PY'
import sys, importlib.metadata as md
found = md.version("torch")
assert found.split("+")[0] == sys.argv[1], f"pip replaced the preinstalled torch {sys.argv[1]} by {found}"
print(f"test-compat: Python {sys.version.split()[0]}, torch {found} kept, cxrsr {md.version('cxrsr')}")
PY
"${PIP[@]}" install "pytest>=9.2.0" "nbval>=0.11.0"

# The fast tests run from the checkout (they import its cxrsr_utils/, the same code) on this
# venv's dependencies; notebook 01 below imports the installed package from site-packages.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export CXRSR_ROOT="$PWD"
"$VENV/bin/python" -m pytest -m "not slow" -q -p no:cacheprovider tests
(cd "$out" && "$OLDPWD/$VENV/bin/python" -c \
  'import cxrsr_utils; assert "site-packages" in cxrsr_utils.__file__, cxrsr_utils.__file__')

"$VENV/bin/python" -m ipykernel install --sys-prefix --name cxrsr --display-name "Python 3 (cxrsr, 3.12)" >/dev/null
CXRSR_OUTPUT_ROOT="$out/run" "$VENV/bin/python" -m cxrsr_utils.runner --profile quick --only 01
echo "test-compat: passed (Python 3.12, torch $TORCH, notebook 01)"
