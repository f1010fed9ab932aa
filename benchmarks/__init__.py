"""Side-by-side benchmarks of geossh, paramiko, asyncssh and OpenSSH's sshd.

Run ``python -m benchmarks`` (``--quick`` for a run under two minutes);
README.md beside this file explains the workloads and how to read them.
"""
