# Activates PyCache in every Python process started under `pycache run`.
#
# `pycache run` puts this directory first on PYTHONPATH. This module turns
# PyCache on, takes the directory back off sys.path, and then imports the
# environment's own sitecustomize, if there is one, so that keeps working.
# It must run on any Python (even 2.7) without failing.
import os
import sys


def _pycache_boot():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    if sys.version_info >= (3, 9) and sys.implementation.name == "cpython":
        # Prefer a PyCache installed in the child's own environment; else use ours.
        ours = os.path.dirname(os.path.dirname(here))
        sys.path.append(ours)
        try:
            import pycache._activate

            pycache._activate.activate()
        except Exception:
            pass
        finally:
            try:
                sys.path.remove(ours)
            except ValueError:
                pass
    this = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the environment's own)
    except ImportError as exc:
        if getattr(exc, "name", None) != "sitecustomize":
            raise
        if this is not None:
            sys.modules["sitecustomize"] = this


_pycache_boot()
del _pycache_boot
