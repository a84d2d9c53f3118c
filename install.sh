#!/usr/bin/env bash
# Sets up the engine in .venv at the repository root and installs the GIMP plug-in (idempotent).
#   ./install.sh                 engine venv + plug-in into every GIMP 3.x profile
#   ./install.sh --plugin-only   only (re)install the plug-in
#   ./install.sh --uninstall     remove the plug-in from every GIMP 3.x profile (keeps .venv)
# TORCH_SPEC picks the PyTorch build, e.g. TORCH_SPEC='torch==2.13.0' (default) or a CUDA index.
# GIMP_CONFIG_DIR overrides where GIMP's profiles live (default ~/.config/GIMP, which Flatpak
# GIMP reads too; on macOS ~/Library/Application Support/GIMP).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
PLUGIN=deep_image_analogy
if [ "$(uname -s)" = Darwin ]; then
    GIMP_CONFIG_DIR=${GIMP_CONFIG_DIR:-$HOME/Library/Application Support/GIMP}
else
    GIMP_CONFIG_DIR=${GIMP_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/GIMP}
fi

ACTION=all
case "${1:-}" in
    "") ;;
    --plugin-only) ACTION=plugin ;;
    --uninstall) ACTION=uninstall ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

install_engine() {
    if [ ! -x .venv/bin/python ]; then
        echo "install.sh: creating .venv with $($PYTHON --version 2>&1)"
        "$PYTHON" -m venv .venv
    fi
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        echo "install.sh: installing ${TORCH_SPEC:-torch==2.13.0}"
        .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
    fi
    echo "install.sh: installing the engine and its test tools into .venv"
    .venv/bin/python -m pip install -q -e "$ROOT[test]"
    echo "install.sh: engine ready: $ROOT/.venv/bin/python -m analogy_engine A.png B_PRIME.png --out out/"
}

# Every GIMP 3.x profile (3.0, 3.2, …); a fresh ~/.config/GIMP/3.0 when GIMP never ran.
profiles() {
    local found=0 dir
    for dir in "$GIMP_CONFIG_DIR"/3.*/; do
        [ -d "$dir" ] || continue
        found=1
        echo "${dir%/}"
    done
    if [ "$found" = 0 ] && [ "$ACTION" != uninstall ]; then
        echo "$GIMP_CONFIG_DIR/3.0"
    fi
}

json_escape() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

install_plugin() {
    local profile target
    while IFS= read -r profile; do
        target="$profile/plug-ins/$PLUGIN"
        mkdir -p "$profile/plug-ins"
        # Replace only our own folder, so that stale modules from older versions disappear.
        rm -rf "$target"
        mkdir -p "$target"
        # -L: dia_contract.py is a link to analogy_engine/contract.py in the checkout; copy the file.
        cp -L "$ROOT/gimp_plugin/$PLUGIN"/*.py "$target/"
        chmod 755 "$target/$PLUGIN.py"
        # The plug-in starts the engine with this Python when none is running.
        printf '{"python": "%s", "root": "%s"}\n' "$(json_escape "$ROOT/.venv/bin/python")" \
            "$(json_escape "$ROOT")" >"$target/engine.json"
        echo "install.sh: plug-in installed in $target"
    done < <(profiles)
    echo "install.sh: restart GIMP, then select two layers and use Filters ▸ Map ▸ Deep Image Analogy…"
}

uninstall_plugin() {
    local profile target removed=0
    while IFS= read -r profile; do
        target="$profile/plug-ins/$PLUGIN"
        if [ -d "$target" ]; then
            rm -rf "$target"
            echo "install.sh: removed $target"
            removed=1
        fi
    done < <(profiles)
    if [ "$removed" = 0 ]; then
        echo "install.sh: the plug-in was not installed in $GIMP_CONFIG_DIR/3.*"
    else
        echo "install.sh: restart GIMP to drop the menu entry; .venv was kept (delete it by hand)"
    fi
}

case "$ACTION" in
    all) install_engine; install_plugin ;;
    plugin) install_plugin ;;
    uninstall) uninstall_plugin ;;
esac
