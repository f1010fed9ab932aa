"""The facade: paramiko's object model on the pure core.

``Transport`` turns the core's events into ``ServerInterface`` calls and
``Channel`` objects; ``Channel`` turns blocking calls into core commands.
The key classes, ``Message``, ``BufferedFile`` and paramiko's ``common`` and
``util`` live here too. Applications import them from ``geossh`` or from
paramiko's module paths (``geossh.transport``, ``geossh.channel``, …), which
re-export these modules.

May import: ``geossh.proto`` (core), ``geossh._green`` (driver) and the base
modules (``errors``, ``logtext``, ``_version``). Must never import
``geossh.services``, ``geossh.sftp`` or ``geossh.runner``
(``tests/unit/test_layers.py`` enforces it).
"""
