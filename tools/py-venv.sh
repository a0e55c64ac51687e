#!/usr/bin/env bash
# Makes (once) a Python virtual environment with the official Kubernetes client,
# for the tests that drive ferry's HTTPS API with it. Prints the python path.
#   tools/py-venv.sh DIR
set -euo pipefail
dir=${1:?usage: tools/py-venv.sh DIR}
version=37.0.2
if ! "$dir/bin/python" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$version')" 2>/dev/null; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check "kubernetes==$version" >&2
fi
echo "$dir/bin/python"
