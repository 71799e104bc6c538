"""``cemkit --help`` imports no heavy library; the packages' lazy exports behave as eager ones."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pandas", "pyarrow", "dask", "distributed", "numba", "presidio_analyzer",
         "papermill", "cryptography", "phonenumbers")  # fmt: skip
#: Libraries a command needs only when it runs (nbformat pulls jsonschema and its format
#: checkers: seconds of imports; pydantic builds the model schema): not for ``--help``.
SLOW = ("nbformat", "nbconvert", "jsonschema", "pydantic", "yaml", "cemkit.model.spec",
        "cemkit.privacy.policy")  # fmt: skip


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    return done.stdout


def test_help_imports_no_heavy_library():
    out = _run(
        "import contextlib, io, json, sys\n"
        "from cemkit import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules],"
        " 'help': buf.getvalue()}))\n"
    )
    got = json.loads(out)
    assert got["loaded"] == []
    slow = _run(
        "import contextlib, io, json, sys\n"
        "from cemkit import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([m for m in {SLOW!r} if m in sys.modules]))\n"
    )
    assert json.loads(slow) == []
    for command in ("synth", "load", "protect", "reveal", "correlate", "kqi", "run", "report",
                    "policy", "demo"):  # fmt: skip
        assert f"    {command}" in got["help"], command


def test_importing_the_cli_imports_no_heavy_library():
    out = _run(
        "import json, sys\n"
        "import cemkit.cli\n"
        f"print(json.dumps([m for m in {HEAVY + SLOW!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


def test_sub_command_help_imports_no_heavy_library():
    out = _run(
        "import contextlib, io, json, sys\n"
        "from cemkit import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['run', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


def test_function_keeps_its_name_when_its_submodule_is_imported_first():
    # ``cemkit.correlate.match`` is a module and a function; the package attribute is the function
    out = _run(
        "import cemkit.correlate.match, cemkit.kqi.rollup\n"
        "from cemkit.correlate import match, stitch\n"
        "from cemkit.kqi import rollup\n"
        "import cemkit.correlate as c\n"
        "print(callable(match), callable(stitch), callable(rollup), callable(c.match))\n"
    )
    assert out.split() == ["True"] * 4


def test_registry_knows_every_format_without_importing_them_first():
    out = _run("from cemkit.io.base import registry\nprint(' '.join(registry.names()))\n")
    names = out.split()
    for fmt in ("asterisk", "freeswitch", "cucm", "generic", "parquet", "sip-pcap"):
        assert fmt in names


def test_a_sync_run_imports_neither_distributed_nor_ipython(tmp_path):
    # distributed costs ~0.3 CPU-s and IPython ~0.07 of every command's start; a sync run (the
    # one-machine default) needs neither: a cluster or a notebook brings its own import
    from cemkit import synth

    synth.generate(tmp_path / "w", records=2_000, seed=3)
    w = tmp_path / "w"
    out = _run(
        "import json, os, sys\n"
        "os.environ['CEMKIT_KEY'] = '5c' * 32\n"
        "import cemkit\n"
        f"cemkit.run({str(w / 'records')!r}, format='parquet', model={str(w / 'model.yaml')!r},"
        f" out={str(tmp_path / 'o')!r}, scheduler='sync')\n"
        "print(json.dumps({m: m in sys.modules for m in ('distributed', 'IPython')}))\n"
    )
    assert json.loads(out.splitlines()[-1]) == {"distributed": False, "IPython": False}
