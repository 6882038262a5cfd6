"""End-to-end: unusual source files behave exactly as under CPython, cold and warm.

Each case imports one module from a generated tree, catching whatever the
import raises, and prints the outcome. PyCache runs twice (an empty store, then
a warm one) and each run must print what plain CPython prints, byte for byte;
an uncaught error must also print the same traceback.
"""

from __future__ import annotations

import pytest

PROBE = """\
import sys
try:
    import target
except BaseException as exc:
    print("raised", type(exc).__name__, str(exc).replace(sys.argv[1], "<tree>"))
    lineno = getattr(exc, "lineno", None)
    print("at", getattr(exc, "filename", None) and "<file>", lineno)
else:
    print("value", repr(getattr(target, "VALUE", None)), target.__doc__)
"""

BIG_LINES = 10 * 1024 * 1024 // 20 + 1  # just over 10 MB of source

CASES: dict[str, bytes] = {
    "empty": b"",
    "bom": b'\xef\xbb\xbf"""Doc."""\nVALUE = "caf\xc3\xa9"\n',
    "latin-1-cookie": b'# -*- coding: latin-1 -*-\nVALUE = "caf\xe9"\n',
    "cp1252-cookie": b'# vim: set fileencoding=cp1252 :\nVALUE = "\x80 euro"\n',
    "bad-utf-8": b'VALUE = "caf\xe9"\n',
    "unknown-cookie": b"# coding: no-such-codec\nVALUE = 1\n",
    "bom-and-other-cookie": b"\xef\xbb\xbf# coding: latin-1\nVALUE = 1\n",
    "nul-byte": b"VALUE = 1\x00\n",
    "syntax-error": b"VALUE = (\n",
    "indentation-error": b"if True:\nVALUE = 1\n",
    "value-error-literal": b"VALUE = '\\N{NO SUCH CHARACTER NAME}'\n",
    "crlf": b'"""Doc."""\r\nVALUE = [1,\r\n 2]\r\n',
    "no-final-newline": b"VALUE = 7",
    "huge": b"".join(b"V%08d = %08d\n" % (i, i) for i in range(BIG_LINES)) + b"VALUE = 3\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_source_behaves_as_under_cpython(sandbox, make_tree, run_py, case):
    tree = make_tree({})
    target = tree / "target.py"
    target.write_bytes(CASES[case])
    probe = sandbox.script(PROBE)
    cpython = run_py([probe, str(tree)], pycache=False, pythonpath=[tree], check=False)
    assert cpython.returncode == 0, cpython
    cold = run_py([probe, str(tree)], pythonpath=[tree], check=False)
    assert (cold.returncode, cold.stdout, cold.stderr) == (0, cpython.stdout, ""), cold
    warm = run_py([probe, str(tree)], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"}, check=False)
    assert (warm.returncode, warm.stdout) == (0, cpython.stdout), warm
    # A module that compiled is served from the store; one that did not is
    # compiled again (and fails again) rather than cached as a failure.
    events = [line.split(" (")[0] for line in warm.trace if line.endswith(")")]
    imported = cpython.stdout.startswith("value")
    assert f"{'hit' if imported else 'miss'} {target}" in events, warm


@pytest.mark.parametrize("case", ["nul-byte", "syntax-error", "bad-utf-8", "value-error-literal"])
def test_uncaught_error_prints_cpythons_traceback(sandbox, make_tree, run_py, case):
    tree = make_tree({})
    (tree / "target.py").write_bytes(CASES[case])
    cpython = run_py(["-c", "import target"], pycache=False, pythonpath=[tree], check=False)
    assert cpython.returncode == 1 and "Error" in cpython.stderr, cpython
    for attempt in ("cold", "warm"):
        run = run_py(["-c", "import target"], pythonpath=[tree], check=False)
        assert (run.returncode, run.stdout, run.stderr) == (1, "", cpython.stderr), (attempt, run)
