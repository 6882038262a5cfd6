"""Store backends: content-addressed byte stores, one backend per module.

Every backend follows the ``Store`` protocol in ``stores.base``. Keys are
lower-case hex strings; values are opaque entry bytes (see ``pycache._entry``).
"""
