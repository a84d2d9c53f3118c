"""The "user" of the GUI test, run inside the GIMP root next to gui_batch.py (Xvfb, no WM).

Takes screenshots (xwd → PNG with netpbm) and presses keys with xdotool (XTEST, so GTK sees
real key events). Log and screenshots go to OUT (argv[1]). With OUT/driver.json saying
{"preview": true} it first presses the dialog's Preview button and waits until the dialog stops
changing (preview.png), then presses OK.
"""

import json
import os
import subprocess
import sys
import time

OUT = sys.argv[1]


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def sh(command, timeout=30):
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
    return result.stdout.strip()


def wait(predicate, timeout, interval=0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def windows(name):
    return sh(f"xdotool search --onlyvisible --name '{name}'").split()


def describe():
    for wid in sh("xdotool search --onlyvisible --name '.'").split():
        log("  window", wid, repr(sh(f"xdotool getwindowname {wid}")), sh(f"xdotool getwindowgeometry {wid}"))


def shot(path, window=None):
    target = f"-id {window}" if window else "-root"
    sh(f"xwd -silent {target} | xwdtopnm 2>/dev/null | pnmtopng > {path}")
    log("screenshot", path, os.path.getsize(path) if os.path.exists(path) else "missing")


def marker(name):
    return os.path.exists(os.path.join(OUT, name))


def settings():
    path = os.path.join(OUT, "driver.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def colourful(window):
    """How many pixels of the window are clearly coloured (the theme is grey; A′ is not)."""
    data = subprocess.run(f"xwd -silent -id {window} | xwdtopnm 2>/dev/null", shell=True,
                          capture_output=True, timeout=30).stdout
    pixels = data.split(b"\n", 3)[3] if data.count(b"\n") >= 3 else b""  # netpbm: P6, W H, 255
    return sum(1 for r, g, b in zip(pixels[0::3], pixels[1::3], pixels[2::3], strict=False)
               if max(r, g, b) - min(r, g, b) > 60)


def preview(wid, timeout=240):
    """Press Preview (alt+v), then wait until a coloured picture appears in the dialog (A′), or
    time out: the dialog then is preview.png either way."""
    before = colourful(wid)
    sh("xdotool key --clearmodifiers alt+v")
    log("pressed Preview; coloured pixels before:", before)
    end = time.monotonic() + timeout
    now = before
    while time.monotonic() < end:
        time.sleep(1.0)
        now = colourful(wid)
        if now > before + 3000:
            break
    log("preview shown" if now > before + 3000 else "no preview appeared", "coloured pixels:", now)
    time.sleep(1.0)
    shot(os.path.join(OUT, "preview.png"), wid)


def main():
    # Both procedures' dialogs: "Deep Image Analogy" and "Deep Image Analogy: animation" (image
    # windows' titles start with the image's name, never with this).
    if not wait(lambda: marker("ready"), 180):
        log("GIMP never became ready")
        return
    dialog = wait(lambda: windows("^Deep Image Analogy"), 60)
    if not dialog:
        log("no dialog")
        describe()
        shot(os.path.join(OUT, "no-dialog.png"))
        return
    wid = dialog[0]
    time.sleep(2.0)  # let GTK finish drawing
    describe()
    shot(os.path.join(OUT, "dialog.png"), wid)
    shot(os.path.join(OUT, "dialog-screen.png"))
    sh(f"xdotool windowfocus --sync {wid}")
    if settings().get("preview"):
        preview(wid)
        sh(f"xdotool windowfocus --sync {wid}")
        sh("xdotool key --clearmodifiers alt+o")  # Return would press Preview again (it has focus)
    else:
        sh("xdotool key --clearmodifiers Return")
    if wait(lambda: windows("^Deep Image Analogy"), 3):
        log("Return did not close the dialog; trying the OK mnemonic")
        sh("xdotool key --clearmodifiers alt+o")
    if not wait(lambda: marker("ran"), 3):
        shot(os.path.join(OUT, "progress.png"))  # the status bar while the engine works
    if not wait(lambda: marker("ran"), 900):
        log("the procedure never returned")
        shot(os.path.join(OUT, "stuck.png"))
        return
    main_window = wait(lambda: windows("GIMP$"), 10)
    if main_window:
        # Whole screen, image fitted: a readable picture of the result and the Layers dock.
        sh(f"xdotool windowsize --sync {main_window[0]} 1280 900")
        sh(f"xdotool windowfocus --sync {main_window[0]}")
        time.sleep(1.0)
        sh("xdotool key --clearmodifiers shift+ctrl+j")
    time.sleep(2.0)
    describe()
    shot(os.path.join(OUT, "result.png"))
    if main_window:
        sh(f"xdotool windowfocus --sync {main_window[0]}")
        time.sleep(0.5)
        sh("xdotool key --clearmodifiers ctrl+z")
        log("pressed ctrl+z in", main_window[0])
    else:
        log("no image window")
    time.sleep(1.0)
    with open(os.path.join(OUT, "undone"), "w") as f:
        f.write("1")
    wait(lambda: marker("done"), 60)


if __name__ == "__main__":
    main()
