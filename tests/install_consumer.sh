#!/usr/bin/env bash
# cmake --install into a fresh prefix, then examples/consumer configured and built against that prefix
# alone (find_package(gradflow)) and run; the installed CLI and Python package answer with the build's
# version. Usage: install_consumer.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
test -f "$prefix/lib/cmake/gradflow/gradflowConfig.cmake"
test -f "$prefix/include/gradflow/run/scenario.hpp"
cmake -S "$src/examples/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  > "$work/configure.log"
cmake --build "$work/consumer" -j2 > "$work/build.log"
"$work/consumer/consumer"
version=$("$prefix/bin/gradflow" --version)
echo "$version"
if [ -d "$prefix/lib/python3/dist-packages/gradflow" ]; then
  py=/usr/bin/python3; [ -x "$py" ] || py=python3
  pyversion=$(PYTHONPATH="$prefix/lib/python3/dist-packages" "$py" -c \
    'import gradflow; print(f"gradflow {gradflow.__version__} (commit {gradflow.__commit__})")')
  [ "$pyversion" = "$version" ] || { echo "installed Python package says '$pyversion', CLI '$version'" >&2; exit 1; }
fi
test -x "$prefix/share/gradflow/tools/plot_heatmap.py"
echo "install_consumer: ok"
