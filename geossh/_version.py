"""The package version, in a module of its own.

Imported by ``geossh/__init__`` and by any module that needs the version
(``transport``, ``cli``), so none of them imports the package itself, and by
setuptools (``[tool.setuptools.dynamic]``), which reads it without importing
gevent. Must import nothing.
"""

__version__ = "0.1.0"
