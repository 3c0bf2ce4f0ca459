"""Build the Lumiku app with PyInstaller: one command, output in dist/lumiku/.

    pip install ".[build]"               # lite: the core and the instant engine
    python build/build.py                # -> dist/lumiku/lumiku (lumiku.exe on Windows)
    python build/build.py --flavour full # with the diffusion extra installed first
    python build/build.py --pack-only    # zip dist/lumiku into dist/lumiku-lite-<os>-<cpu>.zip

Prints the build time, the folder's size and the binary's path.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
WORK = ROOT / "build" / "out"  # ignored by git


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def binary_path(dist: Path = DIST) -> Path:
    return dist / "lumiku" / ("lumiku.exe" if sys.platform == "win32" else "lumiku")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", choices=("lite", "full"), default="lite")
    parser.add_argument("--clean", action="store_true", help="rebuild from scratch")
    parser.add_argument(
        "--windowed",
        choices=("auto", "yes", "no"),
        default="auto",
        help="no console window (auto: on Windows only)",
    )
    parser.add_argument("--dist", type=Path, default=DIST, help="output folder (default dist/)")
    parser.add_argument(
        "--pack-only",
        action="store_true",
        help="zip the built folder for distribution (keeps the executable bit), do not build",
    )
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    if args.pack_only:
        return pack(args.flavour, dist)

    if importlib.util.find_spec("PyInstaller") is None:
        print("build: PyInstaller is missing; run: pip install '.[build]'", file=sys.stderr)
        return 2
    if args.flavour == "full":
        missing = [m for m in ("torch", "diffusers", "transformers") if not _has(m)]
        if missing:
            print(
                f"build: the full flavour needs the diffusion extra ({', '.join(missing)} "
                "missing); run: pip install '.[build,diffusion]'",
                file=sys.stderr,
            )
            return 2

    env = dict(os.environ, LUMIKU_FLAVOUR=args.flavour)
    if args.windowed != "auto":
        env["LUMIKU_WINDOWED"] = "1" if args.windowed == "yes" else "0"
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(ROOT / "lumiku.spec"),
        "--noconfirm",
        "--log-level=WARN",
        f"--distpath={dist}",
        f"--workpath={WORK / args.flavour}",  # each flavour keeps its own analysis cache
    ]
    if args.clean:
        command.append("--clean")
        shutil.rmtree(dist / "lumiku", ignore_errors=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        print(f"build: PyInstaller failed (exit {result.returncode})", file=sys.stderr)
        return result.returncode
    binary = binary_path(dist)
    if not binary.is_file():
        print(f"build: {binary} was not produced", file=sys.stderr)
        return 1
    size = folder_size(binary.parent) / 1e6
    print(f"built the {args.flavour} flavour in {elapsed:.0f} s: {binary} ({size:.1f} MB folder)")
    return 0


def pack(flavour: str, dist: Path) -> int:
    binary = binary_path(dist)
    if not binary.is_file():
        print(f"build: nothing to pack, {binary} is missing", file=sys.stderr)
        return 1
    folder = binary.parent
    machine = platform.machine().lower() or "unknown"
    archive = dist / f"lumiku-{flavour}-{sys.platform}-{machine}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(dist).as_posix())  # mode bits come along
    print(f"packed {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return 0


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    raise SystemExit(main())
