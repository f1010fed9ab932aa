"""asyncssh under test: ``asyncssh.listen`` with a process_factory and sftp_factory."""

from __future__ import annotations

import asyncio
import functools

import asyncssh

from benchmarks.servers.common import ECHO, SINK, ZEROS, announce, parse_command, server_args


async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """Emulate the workload command, then exit 0."""
    command = parse_command(process.command or "")
    if command is None:
        process.exit(127)
        return
    if command.kind == ECHO:
        process.stdout.write(b"hi\n")
    elif command.kind == SINK:
        while await process.stdin.read(1 << 20):
            pass
    else:
        left = command.size
        while left > 0:
            piece = min(left, len(ZEROS))
            process.stdout.write(ZEROS if piece == len(ZEROS) else ZEROS[:piece])
            await process.stdout.drain()
            left -= piece
    process.exit(0)


async def serve() -> None:
    args = server_args(__doc__.splitlines()[0])
    server = await asyncssh.listen(
        "127.0.0.1",
        args.port,
        server_host_keys=[args.host_key],
        authorized_client_keys=args.authorized_key,
        process_factory=handle,
        sftp_factory=functools.partial(asyncssh.SFTPServer, chroot=args.sftp_root),
        encoding=None,
        allow_scp=False,
        backlog=4096,
    )
    announce(server.get_port())
    await asyncio.Future()  # serve until the harness kills the process


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
