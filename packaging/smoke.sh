#!/usr/bin/env bash
# Smoke test of the frozen app: build it from scratch, install the archive into an empty home, and
# run the installed executable's --self-test there, with a bare environment (env -i, PATH without
# any virtual environment, no PYTHONPATH, the working directory outside the source tree), so a
# module, shared library, data file or Qt plugin missing from the bundle fails it.
#
#   packaging/smoke.sh                 build (packaging/build.sh, fresh venv) + test
#   packaging/smoke.sh --reuse-venv    passed on to build.sh
#   packaging/smoke.sh --no-build      test the archive already in dist/
#
# Prints the bundle's size (du -sh), the archive's size, and the start-up time: wall time to
# `--version` (process start, Python and Qt and engine modules loaded, exit), and of the whole
# self-test. Exit 0 when everything passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=1
build_args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --reuse-venv|--torch) build_args+=("$arg") ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "smoke.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$BUILD" = 1 ]; then
  nice -n 10 bash "$REPO/packaging/build.sh" "${build_args[@]}"
fi

VERSION=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$REPO/pyproject.toml")
VARIANT=""
for a in "${build_args[@]}"; do [ "$a" = --torch ] && VARIANT="-torch"; done
ARCHIVE="$REPO/dist/pixret-desktop-$VERSION$VARIANT-linux-$(uname -m).tar.gz"
[ -f "$ARCHIVE" ] || { echo "smoke.sh: $ARCHIVE not found (build first)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pixret-smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/home" "$TMP/tmp" "$TMP/unpacked"
cd "$TMP"  # nothing of the source tree around
bare() { env -i HOME="$TMP/home" PATH=/usr/bin:/bin TMPDIR="$TMP/tmp" LANG=C.UTF-8 "$@"; }
fail() { echo "smoke.sh: FAILED: $*" >&2; exit 1; }

echo "== smoke.sh: unpacking and installing $(basename "$ARCHIVE") into an empty home ($TMP/home)"
tar -xzf "$ARCHIVE" -C "$TMP/unpacked"
TOP="$TMP/unpacked/$(basename "$ARCHIVE" .tar.gz)"
for f in pixret-desktop/pixret-desktop pixret-desktop.desktop pixret.png install.sh README.txt; do
  [ -e "$TOP/$f" ] || fail "the archive lacks $f"
done
bare sh "$TOP/install.sh"
EXE="$TMP/home/.local/bin/pixret-desktop"
APP="$TMP/home/.local/share/pixret-desktop"
[ -x "$EXE" ] || fail "install.sh did not make $EXE"
grep -q "^Exec=\"$APP/pixret-desktop\"$" "$TMP/home/.local/share/applications/pixret-desktop.desktop" \
  || fail "the installed .desktop file does not run $APP/pixret-desktop"
[ -f "$TMP/home/.local/share/icons/hicolor/256x256/apps/pixret.png" ] || fail "the icon was not installed"

echo
echo "== smoke.sh: start-up time (--version, 1 cold + 3 warm runs)"
times=()
for i in 1 2 3 4; do
  t0=$(date +%s.%N)
  out=$(bare "$EXE" --version) || fail "--version exited $?"
  t1=$(date +%s.%N)
  times+=("$(python3 -c "print(f'{$t1 - $t0:.2f}')")")
done
[ "$out" = "pixret-desktop $VERSION" ] || fail "--version printed '$out'"
echo "   $out: ${times[*]} s"

# With a throwaway PostgreSQL server beside it (packaging/with_postgres.py, run by the build venv's
# Python, which has psycopg) the self-test also indexes and searches with a team catalog there,
# through the bundle's own libpq.
PG_PY="$REPO/packaging/.build-venv/bin/python"
with_pg=()
pg_var=()
if [ -x "$PG_PY" ]; then
  with_pg=("$PG_PY" "$REPO/packaging/with_postgres.py")
  pg_var=("PIXRET_SELF_TEST_DB=@PG_URL@")
fi

echo
echo "== smoke.sh: $EXE --self-test (env -i, PATH=/usr/bin:/bin, cwd $TMP)"
t0=$(date +%s.%N)
set +e
"${with_pg[@]}" env -i HOME="$TMP/home" PATH=/usr/bin:/bin TMPDIR="$TMP/tmp" LANG=C.UTF-8 \
  "${pg_var[@]}" "$EXE" --self-test 2>&1 | tee "$TMP/self-test.txt"
rc=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
[ "$rc" = 0 ] || fail "--self-test exited $rc"
grep -q "(frozen;" "$TMP/self-test.txt" || fail "the self-test did not run frozen"
grep -q "engine from $APP/" "$TMP/self-test.txt" || fail "the engine was not loaded from the installed bundle"
grep -q "platform offscreen" "$TMP/self-test.txt" || fail "the main window did not run offscreen"
grep -q "libpq" "$TMP/self-test.txt" || fail "the bundle did not load the PostgreSQL client"
if grep -q "with_postgres.py: a PostgreSQL server" "$TMP/self-test.txt"; then
  grep -q "\[ ok \] team catalog" "$TMP/self-test.txt" || fail "no team catalog step ran"
fi
selftest_s=$(python3 -c "print(f'{$t1 - $t0:.1f}')")

bare sh "$TOP/install.sh" --uninstall >/dev/null
[ ! -e "$EXE" ] && [ ! -e "$APP" ] || fail "install.sh --uninstall left files behind"

echo
echo "== smoke.sh: passed"
echo "   bundle size (du -sh):   $(du -sh "$REPO/dist/pixret-desktop" | cut -f1)  ($REPO/dist/pixret-desktop)"
echo "   archive size:           $(du -sh "$ARCHIVE" | cut -f1)  ($ARCHIVE)"
echo "   start-up to --version:  ${times[0]} s cold, $(printf '%s ' "${times[@]:1}")s warm"
echo "   self-test, end to end:  $selftest_s s (process start to exit)"
