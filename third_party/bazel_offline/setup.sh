#!/usr/bin/env bash
# Installs Bazel (.bazelversion) from the npm registry into .bazel/ and writes .bazel/local.bazelrc,
# the settings that need this clone's absolute path: the stand-in repositories of this folder and
# the repository's .venv Python. Run by `make bazel-setup`; safe to run again (no download then).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
version=$(cat .bazelversion)
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "bazel-setup: the npm package @bazel/bazel-linux_x64 is for Linux x86_64; on $(uname -s)-$(uname -m) install Bazel $version yourself and put it at .bazel/bazel" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "bazel-setup: no .venv/bin/python; run make setup first" >&2
  exit 1
fi
bin=.bazel/npm/node_modules/@bazel/bazel-linux_x64/bazel-$version-linux-x86_64
if [ ! -x "$bin" ]; then
  if ! command -v npm >/dev/null; then
    echo "bazel-setup: npm not found; install Node.js (npm), or put Bazel $version at .bazel/bazel yourself" >&2
    exit 1
  fi
  mkdir -p .bazel/npm
  npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .bazel/npm "@bazel/bazel-linux_x64@$version"
fi
ln -sfn "npm/node_modules/@bazel/bazel-linux_x64/bazel-$version-linux-x86_64" .bazel/bazel
stand_ins=$root/third_party/bazel_offline
cat > .bazel/local.bazelrc.tmp <<RC
# Written by third_party/bazel_offline/setup.sh for the clone at $root.
build --override_repository=rules_cc=$stand_ins/rules_cc
build --override_repository=rules_java=$stand_ins/rules_java
build --override_repository=remote_coverage_tools=$stand_ins/remote_coverage_tools
query --override_repository=rules_cc=$stand_ins/rules_cc
query --override_repository=rules_java=$stand_ins/rules_java
query --override_repository=remote_coverage_tools=$stand_ins/remote_coverage_tools
fetch --override_repository=rules_cc=$stand_ins/rules_cc
fetch --override_repository=rules_java=$stand_ins/rules_java
fetch --override_repository=remote_coverage_tools=$stand_ins/remote_coverage_tools
sync --override_repository=rules_cc=$stand_ins/rules_cc
sync --override_repository=rules_java=$stand_ins/rules_java
sync --override_repository=remote_coverage_tools=$stand_ins/remote_coverage_tools
build --python_path=$root/.venv/bin/python
# Bazel's Python stub starts with "/usr/bin/env python": the .venv's, first on the fixed PATH.
build --action_env=PATH=$root/.venv/bin:/usr/local/bin:/usr/bin:/bin
build --test_env=PATH=$root/.venv/bin:/usr/local/bin:/usr/bin:/bin
RC
mv .bazel/local.bazelrc.tmp .bazel/local.bazelrc
.bazel/bazel --version
