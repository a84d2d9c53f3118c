"""Runs inside GIMP with its GUI (under Xvfb): the interactive path, undo, screenshots' subject.

Talks to gui_driver.py (which presses keys and takes screenshots) through marker files in OUT:
ready → (driver presses OK in the dialog) → ran → (driver presses Ctrl+Z) → undone → done.
Spec: $DIA_TEST_SPEC {"out", "gui": case as in batch_cases.py}; writes OUT/gui.json.
"""

import json
import os
import sys
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.environ["DIA_TEST_SPEC"]) + "/scripts")
import batch_cases  # noqa: E402


def marker(out, name):
    with open(os.path.join(out, name), "w") as f:
        f.write(str(time.time()))


def wait_marker(out, name, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(os.path.join(out, name)):
            return True
        time.sleep(0.2)
    return False


def quit_gimp():
    proc = Gimp.get_pdb().lookup_procedure("gimp-quit")
    config = proc.create_config()
    config.set_property("force", True)
    proc.run(config)


def main():
    with open(os.environ["DIA_TEST_SPEC"]) as f:
        spec = json.load(f)
    out, case = spec["out"], spec["gui"]
    result = {}
    try:
        image, layers, _others, reference, selected = batch_cases.build(case)
        Gimp.Display.new(image)
        Gimp.displays_flush()
        image.clean_all()
        result["tree_before"] = batch_cases.tree(image)
        marker(out, "ready")
        result["paths_before"] = batch_cases.paths(image)
        procedure = case.get("procedure", "analogy")
        values = batch_cases.run_procedure(image, selected, reference, case.get("args", {}),
                                           Gimp.RunMode.INTERACTIVE, procedure,
                                           batch_cases.guide_args(image, layers, case))
        status = values.index(0)
        result["status"] = int(status)
        result["success"] = status == Gimp.PDBStatusType.SUCCESS
        result["error"] = Gimp.get_pdb().get_last_error()
        if procedure == "animation" and result["success"]:
            new = values.index(1)
            result["new_tree"] = batch_cases.tree(new)
        result["tree_after"] = batch_cases.tree(image)
        result["paths_after"] = batch_cases.paths(image)
        Gimp.displays_flush()
        marker(out, "ran")
        result["undo_pressed"] = wait_marker(out, "undone", 120)
        time.sleep(1.0)
        result["tree_undone"] = batch_cases.tree(image)
        result["paths_undone"] = batch_cases.paths(image)
    except Exception:
        result["crash"] = traceback.format_exc()
    with open(os.path.join(out, "gui.json"), "w") as f:
        json.dump(result, f, indent=1)
    marker(out, "done")
    quit_gimp()


if __name__ == "__main__":
    main()
