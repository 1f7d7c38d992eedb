#!/usr/bin/env bash
# Build the PixRet Desktop bundle and its Linux archive, from scratch.
#
#   packaging/build.sh                 fresh venv, install, PyInstaller, archive
#   packaging/build.sh --reuse-venv    keep packaging/.build-venv if it is there (faster rebuilds)
#   packaging/build.sh --torch         the variant with PyTorch (TorchScript backbones; ~1 GB more)
#
# Steps: (1) a fresh virtual environment in packaging/.build-venv; (2) the project installed into
# it *non-editable* from a clean copy of the working tree (tracked and untracked-but-not-ignored
# files, as a fresh checkout plus your edits would hold), with PyInstaller; (3) PyInstaller with
# packaging/pixret-desktop.spec -> dist/pixret-desktop/ (one folder); (4) the archive
# dist/pixret-desktop-<version>-linux-<arch>.tar.gz: the bundle, pixret-desktop.desktop,
# pixret.png and install.sh (installs for the current user under ~/.local).
#
# Environment: PYTHON (default python3, 3.10+), PIXRET_TORCH_INDEX (the pip index for --torch,
# default the PyTorch CPU wheels). Run it with `nice` on a shared machine: PyInstaller's analysis
# takes a few minutes of CPU.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG="$REPO/packaging"
VENV="$PKG/.build-venv"
PYTHON=${PYTHON:-python3}
REUSE=0
TORCH=0
for arg in "$@"; do
  case "$arg" in
    --reuse-venv) REUSE=1 ;;
    --torch) TORCH=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

case "$(uname -s)" in
  Linux) ;;
  *) echo "build.sh builds the Linux archive; on $(uname -s) follow README.md ("Installing and building")" >&2; exit 2 ;;
esac

VERSION=$("$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])
EOF
)
ARCH=$(uname -m)
VARIANT=""
[ "$TORCH" = 1 ] && VARIANT="-torch"
NAME="pixret-desktop-$VERSION$VARIANT-linux-$ARCH"
DIST="$REPO/dist"
WORK="$REPO/build/pyinstaller$VARIANT"
log() { printf '\n== build.sh: %s\n' "$*"; }
t_start=$(date +%s)

# -- 1. the build environment ---------------------------------------------------------------------
if [ "$REUSE" = 1 ] && [ -x "$VENV/bin/python" ]; then
  log "reusing $VENV"
else
  log "fresh virtual environment $VENV ($("$PYTHON" -V))"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"

# -- 2. the project, installed non-editable from a clean copy of the working tree ------------------
SRC=$(mktemp -d "${TMPDIR:-/tmp}/pixret-src.XXXXXX")
trap 'rm -rf "$SRC"' EXIT
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Files that exist: tracked (minus deleted ones) plus untracked ones git does not ignore.
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
     | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
     | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
  (cd "$REPO" && tar --exclude=./.venv --exclude=./dist --exclude=./build --exclude=./packaging/.build-venv -cf - .) \
    | tar -xf - -C "$SRC"
fi
if [ "$TORCH" = 1 ]; then
  log "installing torch (CPU) from ${PIXRET_TORCH_INDEX:=https://download.pytorch.org/whl/cpu}"
  "$PY" -m pip install -q torch --index-url "$PIXRET_TORCH_INDEX"
fi
log "installing pixret-desktop $VERSION (non-editable) with psycopg (team projects) and PyInstaller"
"$PY" -m pip install -q --upgrade "$SRC[package,postgres]"
"$PY" -m pip list --format=freeze 2>/dev/null \
  | grep -i -E '^(pixret-desktop|pyinstaller|pyinstaller-hooks-contrib|pyside6[-_a-z]*|shiboken6|numpy|scipy|opencv[-_a-z]*|faiss[-_a-z]*|shapely|sqlalchemy|alembic|pillow|psycopg[-_a-z]*|torch)==' \
  | sed 's/^/   /'

# -- 3. PyInstaller, run outside the source tree so only the installed package can be found --------
log "PyInstaller ($("$PY" -m PyInstaller --version)) -> $DIST/pixret-desktop"
rm -rf "$DIST/pixret-desktop"
mkdir -p "$DIST" "$WORK"
(cd "$WORK" && env -u PYTHONPATH PIXRET_WITH_TORCH="$TORCH" \
   "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
     --distpath "$DIST" --workpath "$WORK" "$PKG/pixret-desktop.spec")
BUNDLE="$DIST/pixret-desktop"
got=$(env -i HOME="$SRC" PATH=/usr/bin:/bin "$BUNDLE/pixret-desktop" --version)
if [ "$got" != "pixret-desktop $VERSION" ]; then
  echo "build.sh: the bundle says '$got', expected 'pixret-desktop $VERSION'" >&2
  exit 1
fi

# -- 4. the archive -------------------------------------------------------------------------------
log "archive $DIST/$NAME.tar.gz"
STAGE="$REPO/build/stage/$NAME"
rm -rf "$REPO/build/stage"
mkdir -p "$STAGE"
cp -a "$BUNDLE" "$STAGE/pixret-desktop"
cp "$PKG/pixret-desktop.desktop" "$PKG/pixret.png" "$STAGE/"
sed "s/@VERSION@/$VERSION$VARIANT/g" "$PKG/install.sh" > "$STAGE/install.sh"
chmod 755 "$STAGE/install.sh"
cat > "$STAGE/README.txt" <<EOF
PixRet Desktop $VERSION$VARIANT for Linux ($ARCH): no Python needed.

  ./install.sh                 install for this user (~/.local/share/pixret-desktop, menu entry, icon,
                               and ~/.local/bin/pixret-desktop); ./install.sh --uninstall removes it
  ./pixret-desktop/pixret-desktop --demo         or run it in place, without installing
  ./pixret-desktop/pixret-desktop --self-test    check that this machine runs it (offscreen, ~20 s)

A real window needs the usual X11/Wayland libraries of a desktop (Debian/Ubuntu: libegl1
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1); --self-test needs none of the xcb ones.
EOF
if command -v pigz >/dev/null 2>&1; then gz="pigz -6"; else gz="gzip -6"; fi
tar -C "$REPO/build/stage" -cf - "$NAME" | $gz > "$DIST/$NAME.tar.gz.tmp"
mv "$DIST/$NAME.tar.gz.tmp" "$DIST/$NAME.tar.gz"
rm -rf "$REPO/build/stage"

log "done in $(( $(date +%s) - t_start )) s"
echo "   bundle:  $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
echo "   archive: $DIST/$NAME.tar.gz ($(du -sh "$DIST/$NAME.tar.gz" | cut -f1))"
