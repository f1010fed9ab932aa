"""Servers under test, each started as its own subprocess by the harness.

Every server serves the same semantics on 127.0.0.1 (see ``common``):
exec ``echo hi``, ``cat > /dev/null`` (upload sink), ``head -c N /dev/zero``
(download source) and the ``sftp`` subsystem rooted in a directory. The
Python servers print ``READY <port>`` on stdout once listening.
"""
