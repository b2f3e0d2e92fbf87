"""``wasmdo-py``: builds a Python Durable Object class into a wasmdo component.

    wasmdo-py build src/counter.py -o counter.wasm [--class Counter]
    wasmdo-py wit src/counter.py [--class Counter]     # the class's WIT, as the build makes it
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from wasmdo_py.analyze import AnalysisError, analyse
from wasmdo_py.generate import app_module, wit_world

SDK = Path(__file__).resolve().parent
RUNTIME = SDK / "runtime"
COMPONENTIZE_PY = "0.25.1"


class BuildError(Exception):
    pass


def wit_dir():
    """The wasmdo:object WIT files: the packed copy, or the repository's `wit/`."""
    for d in (SDK / "wit", SDK.parent.parent / "wit"):
        if (d / "world.wit").is_file():
            return d
    raise BuildError(f"the wasmdo WIT files are missing (looked in {SDK / 'wit'} and {SDK.parent.parent / 'wit'})")


def log(message):
    print(f"wasmdo-py: {message}", file=sys.stderr, flush=True)


def describe(entry, class_name=None):
    source = Path(entry).read_text()
    try:
        return analyse(source, entry, class_name)
    except AnalysisError as e:
        raise BuildError(str(e)) from None


def componentize_py():
    """The componentize-py to run: the one installed next to this Python, at the pinned version."""
    # next to this Python, where `pip install --user` puts it, or on PATH
    places = [str(Path(sys.executable).parent), sysconfig.get_path("scripts", f"{os.name}_user"), os.environ.get("PATH", "")]
    exe = shutil.which("componentize-py", path=os.pathsep.join(places))
    if exe is None:
        raise BuildError(f"componentize-py is not installed: pip install componentize-py=={COMPONENTIZE_PY}")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()[-1:]
    if version != [COMPONENTIZE_PY]:
        raise BuildError(f"componentize-py {COMPONENTIZE_PY} is needed, found {' '.join(version) or 'an unknown version'}: pip install componentize-py=={COMPONENTIZE_PY}")
    return exe


def build(entry, out, class_name=None):
    started = time.monotonic()
    entry = Path(entry).resolve()
    if entry.suffix != ".py" or not entry.is_file():
        raise BuildError(f"{entry}: not a Python module")
    surface = describe(entry, class_name)
    log(f"class {surface['class_name']}: {len(surface['methods'])} typed RPC method(s)")
    for s in surface["skipped"]:
        log(f"  {s['name']} is reached by name only: {s['why']}")
    with tempfile.TemporaryDirectory(prefix="wasmdo-py-") as work:
        work = Path(work)
        shutil.copytree(wit_dir(), work / "wit" / "deps" / "wasmdo-object", ignore=shutil.ignore_patterns("*.md"))
        (work / "wit" / "class.wit").write_text(wit_world(surface))
        (work / "app").mkdir()
        (work / "app" / "wasmdo_app.py").write_text(app_module(surface, entry.stem))
        command = [
            componentize_py(), "-d", str(work / "wit"), "-w", f"{surface['interface']}-object",
            "componentize", "wasmdo_app",
            "-p", str(work / "app"), "-p", str(entry.parent), "-p", str(RUNTIME),
            "-o", str(work / "out.wasm"),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            # the module's top level runs at build time: its exception is the message
            raise BuildError(f"componentize-py failed:\n{(done.stderr or done.stdout).strip()}")
        data = (work / "out.wasm").read_bytes()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(data)
    partial.replace(out)
    methods = ", ".join(m["wit"] for m in surface["methods"])
    log(f"{out}: class {surface['class_name']}, methods [{methods}], {len(data) / 1e6:.1f} MB, "
        f"sha256 {hashlib.sha256(data).hexdigest()[:12]}, built in {time.monotonic() - started:.1f} s")
    return surface


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wasmdo-py", description="Build Python Durable Object classes for wasmdo.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a class into a component")
    b.add_argument("entry")
    b.add_argument("-o", "--out", required=True)
    b.add_argument("--class", dest="class_name")
    w = sub.add_parser("wit", help="print the class's WIT")
    w.add_argument("entry")
    w.add_argument("--class", dest="class_name")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.entry, args.out, args.class_name)
        else:
            print(wit_world(describe(args.entry, args.class_name)), end="")
    except BuildError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
