#!/usr/bin/env bash
# Installs Etsy's statsd daemon (npm package `statsd`) for the statsd backend's
# integration tests, into target/statsd-node of the workspace (or $1).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail

version="${STATSD_VERSION:-0.9.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/../../.." && pwd)"
dir="${1:-$workspace/target/statsd-node}"
package="$dir/node_modules/statsd/package.json"

if [ -f "$package" ] && grep -q "\"version\": \"$version\"" "$package"; then
    echo "statsd $version already installed in $dir"
    exit 0
fi
command -v node >/dev/null || { echo "node is required (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --omit=optional "statsd@$version"
test -f "$dir/node_modules/statsd/stats.js"
echo "statsd $version installed in $dir"
