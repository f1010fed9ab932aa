"""Services: what runs on an accepted connection, above the facade.

Blocking session handlers (``session``), real OS commands with a pty
(``oscommand``, ``pty``), port, X11 and agent forwarding (``forward``,
``agent``) and the ``authorized_keys`` parser. Each is re-exported at its
documented path (``geossh.session``, ``geossh.forward``, …).

May import: the facade, the driver, the core and the base modules. Must
never import ``geossh.sftp`` or ``geossh.runner``
(``tests/unit/test_layers.py`` enforces it).
"""
