"""PyCache: a content-addressed bytecode cache for CPython.

Import-time cost matters here: this module is loaded at every interpreter
start-up when PyCache is enabled, so it imports only the activation switch.
"""

from ._activate import activate, deactivate, is_active

__all__ = ["__version__", "activate", "deactivate", "is_active"]

__version__ = "0.1.0"
