"""The plug-in's own engine client (gimp_plugin/deep_image_analogy/dia_client.py and the
dia_http, dia_engine, dia_job modules beside it), loaded from a plug-in folder as GIMP loads it:
with that folder first on sys.path. Standard library only, no GIMP needed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "gimp_plugin" / "deep_image_analogy"
CLIENT_MODULES = ("dia_client", "dia_http", "dia_engine", "dia_job")


def load_plugin_client(folder: Path = PLUGIN_DIR) -> ModuleType:
    """`dia_client` from `folder` (its engine.json is the one next to it). Each call loads the
    folder's own modules, so clients from two folders (the repository's, an installed copy) can
    be used side by side; the modules are not left in sys.modules under their plain names."""
    saved = {name: sys.modules.pop(name) for name in CLIENT_MODULES if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("dia_client")
    finally:
        sys.path.remove(str(folder))
        for name in CLIENT_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
