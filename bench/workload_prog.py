"""The benchmark workload: import several hundred third-party modules and use each a little.

Prints one JSON line: how many modules are loaded, how many of them came from
the workload tree, that tree's path, and a digest of a few small results. The
digest must be the same with and without PyCache: a cache never changes what a
program computes.

The benchmark copies this file into a directory of its own before running it,
so that nothing beside it on ``sys.path[0]`` can shadow a module.
"""

import hashlib
import io
import json
import os
import sys

import docutils.core
import jinja2
import pygments
import pygments.formatters
import pygments.lexers
import requests
import rich.console
import rich.markdown
import rich.table
import sympy


def _results():
    x = sympy.Symbol("x")
    yield str(sympy.expand((x + 2) ** 3))
    yield jinja2.Template("{% for n in items %}{{ n * 2 }},{% endfor %}").render(items=[1, 2, 3])
    yield pygments.highlight(
        "def f(a):\n    return a + 1\n",
        pygments.lexers.PythonLexer(),
        pygments.formatters.HtmlFormatter(),
    )
    yield docutils.core.publish_parts("Title\n=====\n\n*some* text", writer_name="html")["body"]
    yield requests.utils.requote_uri("http://example.invalid/a b")
    buffer = io.StringIO()
    console = rich.console.Console(file=buffer, width=60, color_system=None, force_terminal=False)
    table = rich.table.Table("name", "value")
    table.add_row("answer", "42")
    console.print(table)
    console.print(rich.markdown.Markdown("# Heading\n\n- one\n- two"))
    yield buffer.getvalue()


def main():
    digest = hashlib.sha256("\0".join(_results()).encode()).hexdigest()[:16]
    root = os.path.dirname(os.path.dirname(os.path.abspath(sympy.__file__)))
    prefix = root + os.sep
    from_tree = sum(
        1
        for module in list(sys.modules.values())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    )
    report = {
        "modules": len(sys.modules),
        "workload_modules": from_tree,
        "root": root,
        "digest": digest,
    }
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
