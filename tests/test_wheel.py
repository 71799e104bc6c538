"""The built wheel works outside the checkout: package data is found with importlib.resources.

A wheel is built from this checkout, installed into a fresh virtual environment in a temporary
directory (its dependencies are borrowed read-only from the environment running the tests, so no
network is needed), and `cemkit policy explain default` and a small `cemkit demo` are run from a
directory that is not the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(dist), str(REPO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("cemkit-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    target = Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    # dependencies from the running environment, appended after the venv's own site-packages
    # (a plain path: its .pth files, among them this checkout's editable finder, are not run)
    (target / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    bin_dir = env_dir / "bin"
    # data files pip installs with the dependencies (kernel spec, nbconvert's templates)
    shared = Path(sys.prefix) / "share" / "jupyter"
    if shared.is_dir():
        shutil.copytree(shared, env_dir / "share" / "jupyter", symlinks=True)
    # the console script, as pip would have written it for this venv
    script = bin_dir / "cemkit"
    script.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom cemkit.cli import main\n"
                      "sys.exit(main())\n")  # fmt: skip
    script.chmod(0o755)
    return bin_dir


def _run(bin_dir: Path, args: list[str], cwd: Path, timeout: int = 600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CEMKIT_KEY")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bin_dir / "cemkit"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def test_installed_package_is_not_the_checkout(installed, tmp_path):
    code = "import cemkit; print(cemkit.__file__)"
    done = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert not done.stdout.strip().startswith(str(REPO)), done.stdout


def test_policy_explain_from_the_wheel(installed, tmp_path):
    done = _run(installed, ["policy", "explain", "default"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a_number" in done.stdout


def test_demo_from_the_wheel(installed, tmp_path):
    done = _run(installed, ["demo", "--records", "20000", "--out", "demo", "--scheduler", "sync"],
                tmp_path)  # fmt: skip
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert (tmp_path / "demo" / "report" / "02_usage_mining.html").is_file()
