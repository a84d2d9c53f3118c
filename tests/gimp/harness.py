"""Host side of the real-GIMP tests: a cached Debian root with GIMP, run in a private namespace.

Each command runs under `unshare --mount` with /proc, /dev and the test's work folder (as /dia)
mounted inside the root: the mounts belong to that namespace and disappear with its last
process, so nothing stays mounted on the host even when a test is killed, and parallel sessions
do not unmount each other's /proc.

Manual use: python tests/gimp/harness.py [trixie|sid]   # builds the root and prints GIMP's version
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("DIA_GIMP_ROOT_CACHE", "/var/cache/deep-image-analogy"))
SUITES = {"trixie": "3.0", "sid": "3.2"}  # Debian suite → GIMP minor version
INSIDE = "/dia"  # where the work folder appears inside the root


def ensure_root(suite: str) -> Path:
    dest = CACHE / f"gimp-{suite}"
    subprocess.run([str(HERE / "build_root.sh"), suite, str(dest)], check=True, timeout=3600)
    return dest


class GimpRoot:
    """A GIMP root plus a host work folder that appears as /dia inside it."""

    def __init__(self, root: Path, work: Path, suite: str) -> None:
        self.root = root
        self.work = work
        self.suite = suite
        self.version = SUITES[suite]
        (root / INSIDE.lstrip("/")).mkdir(exist_ok=True)
        for sub in ("home", "out", "run"):
            (work / sub).mkdir(parents=True, exist_ok=True)

    def inside(self, path: Path) -> str:
        """The path of a host file under the work folder, as seen inside the root."""
        return INSIDE + "/" + str(path.resolve().relative_to(self.work.resolve()))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "HOME": f"{INSIDE}/home",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "GIMP3_DIRECTORY": f"{INSIDE}/config/GIMP/{self.version}",
            "DIA_RUNTIME_FILE": f"{INSIDE}/run/engine.json",
            "NO_AT_BRIDGE": "1",  # no accessibility bus in the root
        }
        env.update(extra or {})
        return env

    def run(self, command: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command inside the root; kills the whole process group on timeout."""
        root = shlex.quote(str(self.root))
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in self.env(env).items())
        script = (
            f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
            f"mount --bind {shlex.quote(str(self.work))} {root}{INSIDE} && "
            f"exec chroot {root} env -i {assignments} sh -c {shlex.quote(command)}"
        )
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n[harness] killed after {timeout} s".encode()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def batch(self, script: Path, env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        """Run a Python batch script in gimp-console; exit 0 on success, 64 when it raised."""
        return self.run("gimp-console -i -d -f --batch-interpreter python-fu-eval -b - --quit",
                        env=env, stdin=script.read_bytes(), timeout=timeout)

    def install_plugin(self) -> Path:
        """install.sh into this root's profile folder; returns the plug-in folder (host path)."""
        config = self.work / "config" / "GIMP"
        (config / self.version).mkdir(parents=True, exist_ok=True)
        subprocess.run([str(REPO / "install.sh"), "--plugin-only"], check=True, timeout=60,
                       env={**os.environ, "GIMP_CONFIG_DIR": str(config)}, stdout=subprocess.DEVNULL)
        return config / self.version / "plug-ins" / "deep_image_analogy"


def write_spec(work: Path, cases: list[dict], name: str = "spec") -> Path:
    path = work / f"{name}.json"
    path.write_text(json.dumps({"out": f"{INSIDE}/out", "cases": cases}))
    return path


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


if __name__ == "__main__":
    suite = sys.argv[1] if len(sys.argv) > 1 else "trixie"
    root = ensure_root(suite)
    work = Path("/tmp/dia-harness")
    work.mkdir(exist_ok=True)
    result = GimpRoot(root, work, suite).run("gimp-console --version")
    print(result.stdout.decode(), result.stderr.decode()[-2000:])
