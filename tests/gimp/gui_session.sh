#!/bin/sh
# Inside the GIMP root: Xvfb, the driver and GIMP with its GUI running gui_batch.py.
# Usage: gui_session.sh SCRIPTS_DIR OUT_DIR GIMP_BINARY
# Xvfb picks a free display itself (-displayfd) and writes its number once it accepts clients:
# a fixed :99 failed when the previous session's server had not yet let go of its lock.
SCRIPTS=$1 OUT=$2 GIMP=${3:-gimp}
rm -f "$OUT/display"
Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>"$OUT/display" >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
for _ in $(seq 300); do [ -s "$OUT/display" ] && break; sleep 0.1; done
if [ ! -s "$OUT/display" ]; then
    echo "Xvfb did not start: $(cat "$OUT/xvfb.log")" >&2
    kill "$XVFB" 2>/dev/null
    exit 3
fi
export DISPLAY=":$(head -n1 "$OUT/display")"
python3 "$SCRIPTS/gui_driver.py" "$OUT" >"$OUT/driver.log" 2>&1 &
DRIVER=$!
"$GIMP" -n -s -d -f --batch-interpreter python-fu-eval -b - <"$SCRIPTS/gui_batch.py" >"$OUT/gimp.log" 2>&1
STATUS=$?
wait "$DRIVER"
kill "$XVFB" 2>/dev/null
wait "$XVFB" 2>/dev/null
exit $STATUS
