#!/usr/bin/env bash
# Runs the whole test suite again on Node 24 (the machine's own Node is 20). Node 24 comes from
# the npm registry; better-sqlite3-multiple-ciphers is compiled against that package's own
# headers (the machine's npm config names the Node 20 headers), in a copy of the work tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/blufio-node24-XXXXXX")
trap 'rm -rf "$work"' EXIT
# Tests run some commands as the unprivileged user nobody, who must be able to reach node and the code.
chmod 755 "$work"

npm install --prefix "$work/runtime" --no-save --no-audit --no-fund node@24 >/dev/null
dist=$(ls -d "$work"/runtime/node_modules/node/node_modules/node-linux-* | head -n 1)
export PATH="$dist/bin:$PATH"
export npm_config_nodedir="$dist"
echo "node24: $(node --version) from $dist"

mkdir "$work/repo"
tar -C "$root" --exclude=./node_modules --exclude=./dist --exclude=./build --exclude=./.git --exclude=./.scratch -cf - . | tar -C "$work/repo" -xf -
cd "$work/repo"
npm ci --no-audit --no-fund
node --input-type=module -e "const { default: D, BINDING } = await import('./dist/src/storage/driver.js'); new D(':memory:').close(); console.log(BINDING, 'loads on', process.version)"
npm test
