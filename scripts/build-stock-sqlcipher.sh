#!/usr/bin/env bash
# Builds a stock SQLCipher 4 command-line program (zetetic's SQLCipher, community edition,
# compiled from its own amalgamation) for the interop tests in test/sqlcipher-interop.test.ts,
# which check that our binding's `cipher = 'sqlcipher'; legacy = 4` files are real SQLCipher 4
# files and the other way round. Debian's sqlcipher package is SQLCipher 3 and cannot do that.
#
# Sources: the SQLCipher amalgamation that the npm package @journeyapps/sqlcipher ships under
# deps/sqlcipher-amalgamation/ (that package does not ship SQLite's shell.c, so the program is
# our own small scripts/stock-sqlcipher-cli.c). The package version and the tarball's sha512 are
# pinned below; the tarball is fetched with `npm pack` (no install, no package scripts), its hash
# is checked against both the pin and the registry's `npm view ... dist.integrity`, and only the
# amalgamation is taken out of it. Nothing downloaded is run: it is only compiled.
#
# Needs: npm, node, a C compiler (cc) and OpenSSL's headers and libcrypto (Debian: libssl-dev).
#
# Idempotent: the program goes to
#   ${BLUFIO_SQLCIPHER_DIR:-$HOME/.cache/blufio-sqlcipher}/<SQLCipher version>/sqlcipher
# and is rebuilt only when the pins, the flags, the compiler or the front end's source change.
# Progress goes to stderr; the last line of stdout is the program's path.
set -euo pipefail

PKG='@journeyapps/sqlcipher'
PKG_VERSION='6.0.0'
PKG_INTEGRITY='sha512-YmWSQIR4cnv+5L38lYJoS/dIF/+bEZBaACATbeTyq4XKjMHcxdIlFnElBLiIqa9rwseOIimIYjudgOOCovud3Q=='
SQLCIPHER_VERSION='4.14.0'
SQLITE_VERSION='3.51.3'
AMALGAMATION='package/deps/sqlcipher-amalgamation'

# What SQLCipher 4.x requires (it #errors without the EXTRA_INIT/EXTRA_SHUTDOWN hooks, a
# TEMP_STORE of 2 or 3 and a thread-safe build), with OpenSSL's libcrypto as the crypto
# provider, as in SQLCipher's own build instructions; HAVE_STDINT_H and HAVE_USLEEP are what
# SQLCipher's configure script finds on Linux (sqlcipher.c needs <stdint.h>). Nothing that
# changes SQLCipher's defaults (page size, KDF, HMAC, iterations): the point is to be stock.
CFLAGS=(-O2)
DEFINES=(
  -DSQLITE_HAS_CODEC
  -DSQLCIPHER_CRYPTO_OPENSSL
  -DSQLITE_TEMP_STORE=2
  -DSQLITE_THREADSAFE=1
  -DSQLITE_EXTRA_INIT=sqlcipher_extra_init
  -DSQLITE_EXTRA_SHUTDOWN=sqlcipher_extra_shutdown
  -DHAVE_STDINT_H=1
  -DHAVE_USLEEP=1
  -DNDEBUG
)
LIBS=(-lcrypto -lpthread -ldl -lm)

log() { echo "build-stock-sqlcipher: $*" >&2; }
die() { log "error: $*"; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
cli_src="$root/scripts/stock-sqlcipher-cli.c"
[ -f "$cli_src" ] || die "missing $cli_src"

if [ -z "${BLUFIO_SQLCIPHER_DIR:-}" ] && [ -z "${HOME:-}" ]; then
  die "neither BLUFIO_SQLCIPHER_DIR nor HOME is set: nowhere to keep the build"
fi
out="${BLUFIO_SQLCIPHER_DIR:-$HOME/.cache/blufio-sqlcipher}/$SQLCIPHER_VERSION"
bin="$out/sqlcipher"
CC="${CC:-cc}"

command -v "$CC" >/dev/null 2>&1 || die "no C compiler ($CC): install gcc (apt-get install gcc)"

# Everything the build depends on; the cached program is reused only while this is unchanged.
stamp=$(
  cat <<EOF
package: $PKG@$PKG_VERSION
integrity: $PKG_INTEGRITY
sqlcipher: $SQLCIPHER_VERSION (SQLite $SQLITE_VERSION)
cc: $("$CC" --version 2>/dev/null | head -n 1)
cflags: ${CFLAGS[*]} ${DEFINES[*]}
libs: ${LIBS[*]}
front end: scripts/stock-sqlcipher-cli.c sha256 $(sha256sum "$cli_src" | cut -d ' ' -f 1)
EOF
)

if [ -x "$bin" ] && [ -f "$out/BUILD-INFO" ] && [ "$(cat "$out/BUILD-INFO")" = "$stamp" ]; then
  log "up to date: $bin"
  echo "$bin"
  exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is needed to fetch the sources"
command -v node >/dev/null 2>&1 || die "node is needed to check the sources' hash"
if ! printf '#include <openssl/evp.h>\n' | "$CC" -E -x c - >/dev/null 2>&1; then
  die "OpenSSL headers not found: install libssl-dev (apt-get install libssl-dev)"
fi

mkdir -p "$out"
work=$(mktemp -d "$out/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching $PKG@$PKG_VERSION with npm pack"
(cd "$work" && npm pack "$PKG@$PKG_VERSION" --ignore-scripts --pack-destination "$work" >"$work/pack.out" 2>"$work/pack.err") ||
  { cat "$work/pack.err" >&2; die "npm pack $PKG@$PKG_VERSION failed"; }
tgz=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tgz" ] || die "npm pack left no tarball"

registry_integrity=$(cd "$work" && npm view "$PKG@$PKG_VERSION" dist.integrity 2>/dev/null)
file_integrity=$(node -e '
  const { createHash } = require("node:crypto");
  const data = require("node:fs").readFileSync(process.argv[1]);
  process.stdout.write("sha512-" + createHash("sha512").update(data).digest("base64"));
' "$tgz")
[ "$registry_integrity" = "$PKG_INTEGRITY" ] ||
  die "the registry's integrity for $PKG@$PKG_VERSION is '$registry_integrity', the pin is '$PKG_INTEGRITY'"
[ "$file_integrity" = "$PKG_INTEGRITY" ] ||
  die "the downloaded tarball's sha512 is '$file_integrity', expected '$PKG_INTEGRITY'"
log "tarball sha512 matches the pin and the registry: $file_integrity"

# Only the three files that are compiled; nothing else in the package is unpacked.
tar -xzf "$tgz" -C "$work" --no-same-owner --no-same-permissions \
  "$AMALGAMATION/sqlite3.c" "$AMALGAMATION/sqlite3.h" "$AMALGAMATION/VERSION.txt"
src="$work/$AMALGAMATION"
grep -q "^#define CIPHER_VERSION_NUMBER $SQLCIPHER_VERSION\$" "$src/sqlite3.c" ||
  die "the amalgamation is not SQLCipher $SQLCIPHER_VERSION"
grep -q "^#define SQLITE_VERSION  *\"$SQLITE_VERSION\"\$" "$src/sqlite3.c" ||
  die "the amalgamation is not SQLite $SQLITE_VERSION"

log "compiling SQLCipher $SQLCIPHER_VERSION (SQLite $SQLITE_VERSION): $CC ${CFLAGS[*]} ${DEFINES[*]} ... ${LIBS[*]}"
"$CC" "${CFLAGS[@]}" "${DEFINES[@]}" -I"$src" -o "$work/sqlcipher" "$src/sqlite3.c" "$cli_src" "${LIBS[@]}" >&2

# The program must say it is the SQLCipher we meant, on OpenSSL.
# (cipher_provider answers only on a keyed connection; the key of a :memory: database is a no-op.)
version=$("$work/sqlcipher" :memory: 'PRAGMA cipher_version;')
provider=$(printf "PRAGMA key = 'probe'; PRAGMA cipher_provider;" | "$work/sqlcipher" :memory: | tail -n 1)
case "$version" in
  "$SQLCIPHER_VERSION "*) ;;
  *) die "the new program reports cipher_version '$version', expected $SQLCIPHER_VERSION" ;;
esac
[ "$provider" = "openssl" ] || die "the new program reports cipher_provider '$provider', expected openssl"
log "built: cipher_version $version, cipher_provider $provider"

# Into place atomically, the program before the stamp that vouches for it.
mv -f "$work/sqlcipher" "$bin"
printf '%s\n' "$stamp" >"$work/BUILD-INFO"
mv -f "$work/BUILD-INFO" "$out/BUILD-INFO"
echo "$bin"
