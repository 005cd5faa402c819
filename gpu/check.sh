#!/usr/bin/env bash
# The one GPU check (see gpu/README.md):   bash gpu/check.sh [--out DIR] [...]
# Dry run on a CPU at tiny sizes (the test suite runs it):   bash gpu/check.sh --device cpu --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Packages the GPU machine lacks travel as wheels in .whl/ (never committed). Install the
# ones whose distribution is not already present, without network or dependency resolution.
if compgen -G ".whl/*.whl" > /dev/null; then
  missing=$("$PY" - <<'PYEOF'
import glob, importlib.metadata as md, os, re
for w in sorted(glob.glob(".whl/*.whl")):
    name = re.sub(r"[-_.]+", "-", os.path.basename(w).split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(w)
PYEOF
)
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site $missing
  fi
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import tensorly" 2>/dev/null || {
  echo "tensorly is not importable: put the wheels of gpu/README.md into .whl/ first" >&2; exit 2; }
exec timeout "${CHECK_TIMEOUT:-475}" "$PY" gpu/check.py "$@"
