#!/bin/sh
# Inside the GIMP root: Xvfb, the driver and GIMP with its GUI running gui_batch.py.
# Usage: gui_session.sh SCRIPTS_DIR OUT_DIR GIMP_BINARY
SCRIPTS=$1 OUT=$2 GIMP=${3:-gimp}
Xvfb :99 -screen 0 1280x900x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
for _ in $(seq 100); do [ -e /tmp/.X11-unix/X99 ] && break; sleep 0.1; done
export DISPLAY=:99
python3 "$SCRIPTS/gui_driver.py" "$OUT" >"$OUT/driver.log" 2>&1 &
DRIVER=$!
"$GIMP" -n -s -d -f --batch-interpreter python-fu-eval -b - <"$SCRIPTS/gui_batch.py" >"$OUT/gimp.log" 2>&1
STATUS=$?
wait "$DRIVER"
kill "$XVFB" 2>/dev/null
exit $STATUS
