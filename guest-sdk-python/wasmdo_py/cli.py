"""``wasmdo-py``: builds a Python Durable Object class into a wasmdo component.

    wasmdo-py build src/counter.py -o counter.wasm [--class Counter] [--binding COUNTER[=stubs/counter.py]]…
    wasmdo-py build path/to/project -o app.wasm        # its pyproject.toml's [tool.wasmdo]
    wasmdo-py wit src/counter.py [--class Counter]     # the class's WIT, as the build makes it

A project's ``pyproject.toml`` says what the options would:

    [tool.wasmdo]
    main = "src/app.py"                                 # the class's module
    class = "App"                                       # when the module has several
    bindings = { COUNTER = "stubs/counter.py", LIMITER = "" }

A binding makes ``env.NAME`` a namespace of stubs that call the bound class's methods by name;
with a stub module (``wasmdo bindgen <class> --lang py-stub --binding NAME``) its stubs are
typed. Which class a binding reaches is the host's ``[classes.<class>] bindings``.
"""

import argparse
import hashlib
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
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


def describe(entry, class_name=None, strict=False):
    source = Path(entry).read_text()
    try:
        return analyse(source, entry, class_name, strict)
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


def project(path, class_name, bindings):
    """The entry module, class and bindings: a project directory's ``[tool.wasmdo]``, or for a
    module the ``[tool.wasmdo]`` of the nearest ``pyproject.toml`` above it whose ``main`` it is;
    the command line's class and bindings over the project's."""
    path = Path(path).resolve()
    if path.is_dir():
        manifest = path / "pyproject.toml"
        config = _wasmdo_table(manifest)
        if "main" not in config:
            raise BuildError(f'{manifest}: needs [tool.wasmdo] main = "src/<class module>.py"')
    else:
        for directory in path.parents:
            manifest = directory / "pyproject.toml"
            if manifest.is_file():
                config = _wasmdo_table(manifest)
                break
        else:
            return path, class_name, list(bindings)
        if (directory / config.get("main", "")).resolve() != path:
            return path, class_name, list(bindings)
    root = manifest.parent
    # a stub path in the manifest is relative to the project
    listed = [f"{name}={root / stub}" if stub else name for name, stub in config.get("bindings", {}).items()]
    return (root / config["main"]).resolve(), class_name or config.get("class"), listed + list(bindings)


def _wasmdo_table(manifest):
    try:
        config = tomllib.loads(manifest.read_text()).get("tool", {}).get("wasmdo", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BuildError(f"{manifest}: {e}") from None
    bindings = config.get("bindings", {})
    if not isinstance(bindings, dict) or not all(isinstance(v, str) for v in bindings.values()):
        raise BuildError(f'{manifest}: [tool.wasmdo] bindings maps env names to stub modules or "" (e.g. {{ COUNTER = "stubs/counter.py", RAW = "" }})')
    return config


def parse_bindings(specs, entry):
    """``NAME`` or ``NAME=stub.py`` → ``[(name, module, search path or None)]``: the stub
    module imported by the name the class's own code would use when it lies below the class's
    directory, else by its file name from its own directory."""
    found = {}
    for spec in specs:
        name, _, stub = spec.partition("=")
        if not name.isidentifier():
            raise BuildError(f"--binding {spec}: the binding name must be a Python identifier (e.g. COUNTER)")
        if not stub:
            found[name] = (name, None, None)
            continue
        file = Path(stub).resolve()
        if file.suffix != ".py" or not file.is_file():
            raise BuildError(f"--binding {spec}: {file} is not a Python module (wasmdo bindgen <class> --lang py-stub writes one)")
        try:
            parts = file.with_suffix("").relative_to(entry.parent).parts
            found[name] = (name, ".".join(parts), None)
        except ValueError:
            found[name] = (name, file.stem, file.parent)
    return list(found.values())


def site_packages():
    """The running interpreter's package directories — the project's environment when wasmdo-py
    runs in it — where the class's pure-Python dependencies are found (componentize-py bundles
    the modules the class imports, not whole directories)."""
    found = []
    for d in [*site.getsitepackages(), site.getusersitepackages()]:
        if Path(d).is_dir() and Path(d) not in found:
            found.append(Path(d))
    return found


def build(entry, out, class_name=None, bindings=(), strict=False):
    started = time.monotonic()
    entry, class_name, bindings = project(entry, class_name, bindings)
    if entry.suffix != ".py" or not entry.is_file():
        raise BuildError(f"{entry}: not a Python module")
    bindings = parse_bindings(bindings, entry)
    surface = describe(entry, class_name, strict)
    log(f"class {surface['class_name']}: {len(surface['methods'])} typed RPC method(s)"
        + "".join(f", env.{n}" + (f" typed by {m}" if m else "") for n, m, _ in bindings))
    for s in surface["skipped"]:
        log(f"  {entry}:{s['line']}: {s['name']} is reached by name only: {s['why']}")
    with tempfile.TemporaryDirectory(prefix="wasmdo-py-") as work:
        work = Path(work)
        shutil.copytree(wit_dir(), work / "wit" / "deps" / "wasmdo-object", ignore=shutil.ignore_patterns("*.md"))
        (work / "wit" / "class.wit").write_text(wit_world(surface))
        (work / "app").mkdir()
        (work / "app" / "wasmdo_app.py").write_text(app_module(surface, entry.stem, bindings))
        paths = [work / "app", entry.parent, RUNTIME, *{p for _, _, p in bindings if p is not None},
                 *site_packages()]
        command = [
            componentize_py(), "-d", str(work / "wit"), "-w", f"{surface['interface']}-object",
            "componentize", "wasmdo_app", *(a for p in paths for a in ("-p", str(p))),
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
    b.add_argument("--binding", action="append", default=[], metavar="NAME[=STUB.py]",
                   help="env.NAME calls another class (typed by a py-stub module)")
    b.add_argument("--strict", action="store_true",
                   help="every public method must have a typed RPC form (no methods reached by name only)")
    w = sub.add_parser("wit", help="print the class's WIT")
    w.add_argument("entry")
    w.add_argument("--class", dest="class_name")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.entry, args.out, args.class_name, args.binding, args.strict)
        else:
            entry, class_name, _ = project(args.entry, args.class_name, [])
            print(wit_world(describe(entry, class_name)), end="")
    except BuildError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
