"""Shared fixtures: the `unet` binary the results are compared with (UNET_BIN, else the
workspace's debug build, built when missing)."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def unet_bin() -> str:
    path = os.environ.get("UNET_BIN")
    if path:
        return path
    path = ROOT / "target" / "debug" / "unet"
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "unet-cli", "--bin", "unet"], cwd=ROOT, check=True)
    return str(path)


@pytest.fixture(scope="session")
def cli(unet_bin):
    def run(*args, check=True):
        r = subprocess.run([unet_bin, "-q", *map(str, args)], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"unet {' '.join(map(str, args))} failed: {r.stderr}")
        return r

    return run
