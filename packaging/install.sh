#!/bin/sh
# Install PixRet Desktop @VERSION@ for the current user (no root needed), from the unpacked archive:
#
#   ./install.sh               install or update
#   ./install.sh --uninstall   remove what install.sh put in place (projects and settings stay)
#
# Puts the app in $XDG_DATA_HOME/pixret-desktop (default ~/.local/share/pixret-desktop), the menu
# entry in .../applications/pixret-desktop.desktop, the icon in .../icons/hicolor/256x256/apps/
# pixret.png, and a link ~/.local/bin/pixret-desktop.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
APP="$DATA/pixret-desktop"
BIN="$HOME/.local/bin"
DESKTOP="$DATA/applications/pixret-desktop.desktop"
ICON="$DATA/icons/hicolor/256x256/apps/pixret.png"

refresh_menus() {
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA/applications" || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
}

if [ "${1:-}" = "--uninstall" ]; then
  if [ -L "$BIN/pixret-desktop" ]; then rm -f "$BIN/pixret-desktop"; fi
  rm -rf "$APP"
  rm -f "$DESKTOP" "$ICON"
  refresh_menus
  echo "PixRet Desktop removed (your projects, and the demo under $DATA/pixret, are kept)."
  exit 0
fi
if [ -n "${1:-}" ]; then
  echo "usage: $0 [--uninstall]" >&2
  exit 2
fi
if [ ! -x "$HERE/pixret-desktop/pixret-desktop" ]; then
  echo "install.sh: $HERE/pixret-desktop/pixret-desktop not found; run install.sh from the unpacked archive" >&2
  exit 1
fi

# The app: copied next to the old one, then swapped in (a running copy keeps its files).
mkdir -p "$DATA" "$BIN" "$DATA/applications" "$(dirname "$ICON")"
rm -rf "$APP.new" "$APP.old"
cp -R "$HERE/pixret-desktop" "$APP.new"
if [ -e "$APP" ]; then mv "$APP" "$APP.old"; fi
mv "$APP.new" "$APP"
rm -rf "$APP.old"
ln -sf "$APP/pixret-desktop" "$BIN/pixret-desktop"

# The menu entry runs the installed executable by its full path (quoted: the path may hold spaces).
sed -e "s|^Exec=.*|Exec=\"$APP/pixret-desktop\"|" -e "s|^TryExec=.*|TryExec=$APP/pixret-desktop|" \
  "$HERE/pixret-desktop.desktop" > "$DESKTOP.tmp"
mv "$DESKTOP.tmp" "$DESKTOP"
cp "$HERE/pixret.png" "$ICON.tmp"
mv "$ICON.tmp" "$ICON"
refresh_menus

echo "PixRet Desktop @VERSION@ installed:"
echo "  app         $APP"
echo "  command     $BIN/pixret-desktop"
echo "  menu entry  $DESKTOP"
echo "  icon        $ICON"
case ":${PATH:-}:" in
  *":$BIN:"*) ;;
  *) echo "($BIN is not on your PATH: add it, or start the app from the menu)" ;;
esac
echo "Check it with: $BIN/pixret-desktop --self-test"
