"""The dialog's preview of A′: a Preview button that runs the dialog's current choices (mode,
guidance, references, mix, device) at the fast preset and a small working size, on inputs scaled
down to PREVIEW_INPUT pixels, and shows A′ in the dialog.

The layers are read on GIMP's main thread (the GIMP API is not thread-safe); the engine is driven
from a worker thread so that the dialog stays responsive, and the result comes back through
GLib.idle_add. It never waits forever: PREVIEW_TIMEOUT_S ends it, a new Preview or closing the
dialog stops it (and cancels its job in the engine), and every error is shown in the dialog.
"""

from __future__ import annotations

import threading
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from dia_client import EngineError, RawResult, analogy_job, connect, run_job  # noqa: E402
from dia_guide import Guide, gather  # noqa: E402
from dia_layers import PluginError, read_sources  # noqa: E402
from dia_options import (  # noqa: E402
    PREVIEW_INPUT,
    PREVIEW_SHOW,
    PREVIEW_SIZE,
    PREVIEW_TIMEOUT_S,
    options_from,
)
from gi.repository import GdkPixbuf, Gimp, GLib, Gtk  # noqa: E402

HINT = "Preview: a quick look at A′ with these settings (fast preset, small size)."


class Stopped(Exception):
    """This preview was replaced by a newer one, or the dialog closed."""


class Preview:
    """The preview's frame (`widget`): the picture, the Preview button and a status line."""

    def __init__(self, image: Gimp.Image, drawables: list[Gimp.Drawable],
                 config: Gimp.ProcedureConfig) -> None:
        self.image, self.drawables, self.config = image, drawables, config
        self.current: threading.Event | None = None  # set = the running preview must stop
        self.picture = Gtk.Image()
        self.picture.set_size_request(PREVIEW_SHOW, PREVIEW_SHOW)
        self.status = Gtk.Label(label=HINT)
        self.status.set_line_wrap(True)
        self.status.set_max_width_chars(28)
        self.status.set_xalign(0.0)
        self.button = Gtk.Button.new_with_mnemonic("Pre_view")
        self.button.connect("clicked", self.start)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        box.set_border_width(6)
        box.pack_start(self.picture, False, False, 0)
        box.pack_start(self.button, False, False, 0)
        box.pack_start(self.status, False, False, 0)
        self.widget = Gtk.Frame(label="Preview of A′")
        self.widget.add(box)

    def start(self, *_args: object) -> None:
        """Read the inputs now (main thread), then run the job on a worker thread."""
        self.stop()
        try:
            options = options_from(self.config)
            a, b_prime = read_sources(self.image, self.drawables, self.config.get_property("reference"),
                                      options, PREVIEW_INPUT)
            guide = gather(self.config, options, a, b_prime, PREVIEW_INPUT)
            job = analogy_job(a.raw, b_prime.raw, options.preview_params(), ["a_prime"], guide.parts)
        except (PluginError, EngineError) as err:
            self.status.set_text(f"No preview: {err}")
            return
        except Exception as err:  # a bug: say so in the dialog rather than on GIMP's stderr
            self.status.set_text(f"No preview (unexpected failure): {err!r}")
            return
        stop = threading.Event()
        self.current = stop
        self.status.set_text(f"Preview: working at {PREVIEW_SIZE} pixels…")
        threading.Thread(target=self.work, args=(job, options.engine, guide, stop), daemon=True).start()

    def work(self, job: object, address: str, guide: Guide, stop: threading.Event) -> None:
        """The worker thread: no GIMP or GTK call here, only the engine and GLib.idle_add."""
        started = time.monotonic()

        def notify(fraction: float | None, text: str) -> None:  # called at every poll
            if stop.is_set():
                raise Stopped
            if time.monotonic() - started > PREVIEW_TIMEOUT_S:
                raise EngineError(f"it took more than {PREVIEW_TIMEOUT_S:.0f} s; the engine may be busy "
                                  "with another job. Try again, or run the filter.")
            GLib.idle_add(self.say, stop, text)

        try:
            engine = connect(address, notify=notify)
            results, _info = run_job(engine, job, notify=notify)  # cancels the job on any failure
            GLib.idle_add(self.show, stop, results["a_prime"], time.monotonic() - started)
        except Stopped:
            return
        except EngineError as err:
            GLib.idle_add(self.say, stop, f"No preview: {guide.explain(str(err))}")
        except Exception as err:  # a bug: say so in the dialog rather than nothing
            GLib.idle_add(self.say, stop, f"No preview (unexpected failure): {err!r}")

    def say(self, stop: threading.Event, text: str) -> bool:
        if stop is self.current and not stop.is_set():
            self.status.set_text(text)
        return False  # once (GLib.idle_add)

    def show(self, stop: threading.Event, a_prime: RawResult, seconds: float) -> bool:
        if stop is not self.current or stop.is_set():
            return False
        width, height = a_prime.width, a_prime.height
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(a_prime.data), GdkPixbuf.Colorspace.RGB,
                                                 False, 8, width, height, width * a_prime.channels)
        factor = PREVIEW_SHOW / max(width, height)  # small layers are shown bigger, too
        pixbuf = pixbuf.scale_simple(max(1, round(width * factor)), max(1, round(height * factor)),
                                     GdkPixbuf.InterpType.BILINEAR)
        self.picture.set_from_pixbuf(pixbuf)
        self.status.set_text(f"Preview of A′ ({width}×{height}, fast preset): {seconds:.1f} s. The "
                             "result itself comes at full size and quality.")
        self.current = None
        return False

    def stop(self) -> None:
        """Stop the running preview, if any (its worker cancels the engine job at its next poll)."""
        if self.current is not None:
            self.current.set()
            self.current = None
