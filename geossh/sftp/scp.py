"""Legacy scp (the rcp protocol): ``scp -t`` (upload) and ``scp -f`` (download).

Owns the rcp record protocol as OpenSSH's scp.c speaks it: ``C``/``D``/``E``/
``T`` records, a ``\\0`` byte to acknowledge, ``\\1``/``\\2`` + text for a
warning/fatal error. Every path goes through ``RootFS``, the same
confinement as ``LocalSFTPServer``. Names in records must be single path
components; record lines, sizes and times are bounded before use.

Use from an exec handler::

    if ScpHandler.is_scp_command(command):
        ScpHandler(root).run(channel, command)   # sends exit-status, closes
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import posixpath
import re
import shlex
import stat
from dataclasses import dataclass, field
from typing import Any

from geossh._green import fairness
from geossh.logtext import printable
from geossh.sftp.rootfs import RootFS

_log = logging.getLogger("geossh.sftp.scp")

MAX_LINE = 4096 + 64
CHUNK = 256 * 1024
MAX_DEPTH = 64
#: Warning records (``\\1`` + text) the peer may send in one session before it is cut off.
MAX_WARNINGS = 1000
_MAX_SIZE = (1 << 63) - 1
#: Latest time a ``T`` record may carry (seconds): far beyond any real file, and a float
#: of it still fits a 64-bit time_t (``(1 << 63) - 1`` rounds up to 2**63 and overflows).
MAX_TIME = 1 << 62
_Times = tuple[float, float] | None
_FILEMODEMASK = 0o6777  # setuid, setgid and the permission bits, like scp.c
_C_RECORD = re.compile(rb"([CD])([0-7]{4}) ([0-9]{1,19}) (.+)", re.DOTALL)
_T_RECORD = re.compile(rb"T([0-9]{1,19}) ([0-9]{1,6}) ([0-9]{1,19}) ([0-9]{1,6})")
_GLOB = re.compile(r"[*?\[]")


class ScpError(Exception):
    """End the scp session (already reported to the peer when ``reported``)."""

    def __init__(self, message: str, reported: bool = False) -> None:
        super().__init__(message)
        self.reported = reported


@dataclass
class ScpOptions:
    """A parsed ``scp -t``/``scp -f`` command line."""

    sink: bool
    recursive: bool = False
    preserve: bool = False
    target_dir: bool = False
    paths: list[str] = field(default_factory=list)


def parse_scp_command(command: bytes | str) -> ScpOptions:
    """Parse the remote side's command line (``scp [-v] [-r] [-p] [-d] -t|-f [--] path...``)."""
    text = command.decode("utf-8", "surrogateescape") if isinstance(command, bytes) else command
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"bad scp command: {exc}") from None
    if not argv or posixpath.basename(argv[0]) != "scp":
        raise ValueError("not an scp command")
    flags: set[str] = set()
    args = argv[1:]
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":
            break
        for ch in arg[1:]:
            if ch not in "tfrpdvq":
                raise ValueError(f"unsupported scp option -{ch}")
            flags.add(ch)
    if ("t" in flags) == ("f" in flags):
        raise ValueError("scp needs exactly one of -t and -f")
    opts = ScpOptions("t" in flags, "r" in flags, "p" in flags, "d" in flags, args)
    if not args or (opts.sink and len(args) != 1):
        raise ValueError("scp: wrong number of paths")
    return opts


class _Peer:
    """Buffered reads and writes on a channel.

    Received bytes sit in one ``bytearray`` consumed through an offset, so
    taking a byte or a record costs only what it returns (not the whole
    buffer, as repeated slicing of ``bytes`` did); the consumed prefix is
    dropped when more data is appended. A record line is searched for at
    most ``MAX_LINE`` bytes ahead, and each byte is scanned once.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.buf = bytearray()
        self.pos = 0  # first unconsumed byte of ``buf``
        self._scanned = 0  # no newline in ``buf[pos:_scanned]``

    def _fill(self) -> bool:
        data = self.channel.recv(CHUNK)
        if not data:
            return False
        if self.pos:
            del self.buf[: self.pos]  # at most MAX_LINE bytes are still unconsumed here
            self._scanned -= self.pos
            self.pos = 0
        self.buf += data
        return True

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes (at least one); raises ScpError at EOF.

        File data bypasses the buffer when it is empty: a received chunk is
        returned as it is (only what lies beyond ``n`` is kept).
        """
        if self.pos >= len(self.buf):
            data: bytes = self.channel.recv(CHUNK)
            if not data:
                raise ScpError("lost connection")
            if len(data) <= n:
                return data
            self.buf[:] = memoryview(data)[n:]
            self.pos = self._scanned = 0
            return data[:n]
        start = self.pos
        self.pos = min(start + n, len(self.buf))
        with memoryview(self.buf) as view:
            return bytes(view[start : self.pos])

    def read_byte(self) -> int | None:
        """One byte, or None at EOF."""
        if self.pos >= len(self.buf) and not self._fill():
            return None
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def read_line(self) -> bytes:
        """Up to and without the next newline, at most MAX_LINE bytes."""
        limit = MAX_LINE + 1  # the newline may follow MAX_LINE bytes of record
        while True:
            start = max(self.pos, self._scanned)
            end = self.buf.find(b"\n", start, self.pos + limit)
            if end >= 0:
                break
            self._scanned = min(len(self.buf), self.pos + limit)
            if self._scanned - self.pos >= limit:
                raise ScpError("record too long")
            if not self._fill():
                raise ScpError("lost connection")
        line = bytes(self.buf[self.pos : end])
        self.pos = self._scanned = end + 1
        return line

    def send(self, data: bytes) -> None:
        self.channel.sendall(data)


class ScpHandler:
    """Serve legacy scp for one exec request, confined to ``root``.

    ``home`` is the virtual directory relative paths start from;
    ``readonly`` refuses uploads. ``mode_mask`` bounds the modes that
    ``-p`` may set (no setuid/setgid by default).
    """

    mode_mask = 0o1777

    def __init__(
        self, root: str | os.PathLike[str], home: str = "/", readonly: bool = False
    ) -> None:
        self.root = root
        self.home = home
        self.readonly = readonly

    @staticmethod
    def is_scp_command(command: bytes | str) -> bool:
        """True for ``scp ... -t ...``/``scp ... -f ...`` command lines."""
        try:
            parse_scp_command(command)
        except ValueError:
            return False
        return True

    def run(self, channel: Any, command: bytes | str, close: bool = True) -> int:
        """Run the transfer; send exit-status (and close the channel unless
        ``close`` is False). Returns the exit status: 0, or 1 after any error.
        """
        peer = _Peer(channel)
        try:
            opts = parse_scp_command(command)
        except ValueError as exc:
            _send_error(peer, str(exc))
            return self._finish(channel, 1, close)
        try:
            fs = RootFS(self.root, self.home)
        except OSError as exc:
            _log.error("scp: cannot serve %s: %s", self.root, exc)
            _send_error(peer, "server misconfigured")
            return self._finish(channel, 1, close)
        session = _Session(self, fs, peer, opts)
        try:
            status = session.run()
        finally:
            fs.close()
        return self._finish(channel, status, close)

    @staticmethod
    def _finish(channel: Any, status: int, close: bool) -> int:
        try:
            channel.send_exit_status(status)
            if close:
                channel.close()
        except Exception as exc:
            _log.debug("scp: could not finish channel: %s", exc)
        return status


def _send_error(peer: _Peer, message: str, fatal: bool = False) -> None:
    text = message.replace("\n", " ").encode("utf-8", "surrogateescape")[:MAX_LINE]
    with contextlib.suppress(Exception):
        peer.send((b"\x02" if fatal else b"\x01") + b"scp: " + text + b"\n")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _wire_name(path: str) -> bytes:
    """Last component for a C/D record; a newline would break the record."""
    name = posixpath.basename(path.rstrip("/"))
    return name.encode("utf-8", "surrogateescape").replace(b"\n", b"?")


def _os_message(path: str, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return f"{path}: {exc.strerror or os.strerror(exc.errno)}"
    return f"{path}: {exc}"


class _Session:
    """One scp transfer (either direction)."""

    def __init__(self, handler: ScpHandler, fs: RootFS, peer: _Peer, opts: ScpOptions) -> None:
        self.handler = handler
        self.fs = fs
        self.peer = peer
        self.opts = opts
        self.errors = 0
        self.warnings = 0

    def run(self) -> int:
        try:
            if self.opts.sink:
                self._start_sink()
            else:
                self._start_source()
        except ScpError as exc:
            _log.info("scp session ended: %s", printable(exc))
            if not exc.reported:
                _send_error(self.peer, f"protocol error: {exc}")
            self.errors += 1
        except OSError as exc:  # the channel went away
            _log.debug("scp channel error: %s", exc)
            self.errors += 1
        return 1 if self.errors else 0

    def error(self, message: str) -> None:
        """Report a non-fatal error to the peer (run_err)."""
        self.errors += 1
        _log.debug("scp: %s", printable(message))
        _send_error(self.peer, message)

    def response(self) -> bool:
        """Read the peer's ack: True for ``\\0``; False for a warning; ScpError if fatal."""
        code = self.peer.read_byte()
        if code is None:
            raise ScpError("lost connection")
        if code == 0:
            return True
        self.peer_error(code, self.peer.read_line())
        return False

    def peer_error(self, code: int, text: bytes) -> None:
        """Count a ``\\1`` warning from the peer (at most MAX_WARNINGS); raise for any
        other code (``\\2`` is fatal, as is anything unknown, as in scp.c)."""
        self.errors += 1
        _log.debug("scp peer error: %s", printable(text, 200))
        if code != 1:
            raise ScpError("peer reported a fatal error", reported=True)
        self.warnings += 1
        if self.warnings > MAX_WARNINGS:
            raise self._protocol_error("too many warnings")

    # -- upload: we are the sink ---------------------------------------------------------
    def _start_sink(self) -> None:
        if self.handler.readonly:
            _send_error(self.peer, "read-only: uploads are refused")
            raise ScpError("read-only", reported=True)
        target = self.opts.paths[0]
        is_dir = self._is_dir(target)
        if self.opts.target_dir and not is_dir:
            _send_error(self.peer, f"{target}: Not a directory")
            raise ScpError("target is not a directory", reported=True)
        self.sink(target, is_dir, 0)

    def _exists(self, path: str) -> bool:
        try:
            self.fs.stat(path)
        except FileNotFoundError:
            return False
        return True

    def _is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.fs.stat(path).st_mode)
        except (OSError, ValueError):
            return False

    def sink(self, target: str, is_dir: bool, depth: int) -> None:
        """Receive records into ``target`` until ``E`` (or EOF at the top level)."""
        self.peer.send(b"\x00")
        times: tuple[float, float] | None = None
        while True:
            fairness.checkpoint()  # buffered records must not hold the hub
            first = self.peer.read_byte()
            if first is None:
                if depth:
                    raise ScpError("lost connection")
                return
            if first == 0x0A:
                raise self._protocol_error("unexpected <newline>")
            if first in (1, 2):
                self.peer_error(first, self.peer.read_line())
                continue
            line = bytes((first,)) + self.peer.read_line()
            if line == b"E":
                if not depth:
                    raise self._protocol_error("unexpected E record")
                self.peer.send(b"\x00")
                return
            if first == ord("T"):
                times = self._parse_times(line)
                self.peer.send(b"\x00")
                continue
            self._record(line, target, is_dir, depth, times)
            times = None

    def _protocol_error(self, why: str) -> ScpError:
        _send_error(self.peer, f"protocol error: {why}")
        return ScpError(why, reported=True)

    def _parse_times(self, line: bytes) -> tuple[float, float]:
        m = _T_RECORD.fullmatch(line)
        if m is None:
            raise self._protocol_error("bad T record")
        mtime, mus, atime, aus = (int(g) for g in m.groups())
        if mus > 999999 or aus > 999999 or max(mtime, atime) > MAX_TIME:
            raise self._protocol_error("times out of range")
        return (atime + aus / 1e6, mtime + mus / 1e6)

    def _record(
        self, line: bytes, target: str, is_dir: bool, depth: int, times: tuple[float, float] | None
    ) -> None:
        m = _C_RECORD.fullmatch(line)
        if m is None:
            raise self._protocol_error("expected control record")
        kind, mode_s, size_s, raw_name = m.groups()
        size = int(size_s)
        name = raw_name.decode("utf-8", "surrogateescape")
        if size > _MAX_SIZE:
            raise self._protocol_error("size out of range")
        if name in (".", "..") or "/" in name or "\x00" in name:
            raise self._protocol_error(f"unexpected filename: {name!r}")
        mode = int(mode_s, 8)
        path = posixpath.join(target, name) if is_dir else target
        if kind == b"D":
            self._sink_dir(path, mode, depth, times)
        else:
            self._sink_file(path, mode, size, times)

    def _sink_dir(self, path: str, mode: int, depth: int, times: _Times) -> None:
        if not self.opts.recursive:
            raise self._protocol_error("received directory without -r")
        if depth >= MAX_DEPTH:
            raise self._protocol_error("directories nested too deeply")
        final_mode = self._final_mode(mode)
        try:
            created = not self._is_dir(path)
            if created:
                self.fs.mkdir(path, (mode | 0o700) & 0o777)
        except (OSError, ValueError) as exc:
            self.error(_os_message(path, exc))
            return
        self.sink(path, True, depth + 1)
        try:
            if created or self.opts.preserve:
                self.fs.chattr(path, mode=final_mode)
            if times is not None:
                self.fs.chattr(path, times=times)
        except (OSError, ValueError, OverflowError) as exc:
            self.error(_os_message(path, exc))

    def _final_mode(self, mode: int) -> int:
        """``-p`` keeps the sender's mode (within mode_mask); otherwise umask applies."""
        if self.opts.preserve:
            return mode & self.handler.mode_mask
        return mode & 0o777 & ~_umask()

    def _sink_file(self, path: str, mode: int, size: int, times: _Times) -> None:
        final_mode = self._final_mode(mode)
        try:
            created = not self._exists(path)
            fd, _ = self.fs.open(path, os.O_WRONLY | os.O_CREAT, (mode & 0o777) | 0o200)
        except (OSError, ValueError) as exc:
            self.error(_os_message(path, exc))
            return
        try:
            self.peer.send(b"\x00")
            problem = self._receive_data(fd, size, path)
            try:
                if problem is None:
                    os.ftruncate(fd, size)
                    if self.opts.preserve or (created and final_mode & 0o200 == 0):
                        os.fchmod(fd, final_mode)
                    if times is not None:
                        os.utime(fd, times)
            except (OSError, OverflowError) as exc:
                problem = _os_message(path, exc)
        finally:
            os.close(fd)
        self.response()
        if problem is None:
            self.peer.send(b"\x00")
        else:
            self.error(problem)

    def _receive_data(self, fd: int, size: int, path: str) -> str | None:
        """Copy ``size`` bytes from the peer into ``fd``; keep reading after a write error."""
        problem = None
        offset = 0
        while offset < size:
            fairness.checkpoint()
            chunk = self.peer.read_some(min(CHUNK, size - offset))
            if problem is None:
                try:
                    view = memoryview(chunk)
                    pos = offset
                    while view:
                        n = os.pwrite(fd, view, pos)
                        view, pos = view[n:], pos + n
                except OSError as exc:
                    problem = _os_message(path, exc)
            offset += len(chunk)
        return problem

    # -- download: we are the source -----------------------------------------------------
    def _start_source(self) -> None:
        if not self.response():
            return
        for path in self.opts.paths:
            for match in self._expand(path):
                self.source(match, set(), 0)

    def _expand(self, path: str) -> list[str]:
        path = path.rstrip("/") or "/"
        head, tail = posixpath.split(path)
        if not _GLOB.search(tail) or _GLOB.search(head):
            return [path]
        try:
            names = sorted(n for n, _ in self.fs.listdir(head or "."))
        except (OSError, ValueError):
            names = []
        matches = [posixpath.join(head, n) for n in names if fnmatch.fnmatchcase(n, tail)]
        if not matches:
            self.error(f"{path}: No such file or directory")
        return matches

    def source(self, path: str, ancestors: set[tuple[int, int]], depth: int) -> None:
        """Send one file, or a directory tree with -r."""
        fairness.checkpoint()
        try:
            st = self.fs.stat(path)
        except (OSError, ValueError) as exc:
            self.error(_os_message(path, exc))
            return
        if stat.S_ISDIR(st.st_mode):
            if self.opts.recursive:
                self._source_dir(path, st, ancestors, depth)
            else:
                self.error(f"{path}: not a regular file")
            return
        try:
            fd, _ = self.fs.open(path, os.O_RDONLY)
        except (OSError, ValueError) as exc:
            self.error(_os_message(path, exc))
            return
        try:
            self._send_file(fd, path)
        finally:
            os.close(fd)

    def _send_times(self, st: os.stat_result) -> bool:
        self.peer.send(b"T%d 0 %d 0\n" % (int(st.st_mtime), int(st.st_atime)))
        return self.response()

    def _send_file(self, fd: int, path: str) -> None:
        st = os.fstat(fd)
        if self.opts.preserve and not self._send_times(st):
            return
        name = _wire_name(path)
        self.peer.send(b"C%04o %d %s\n" % (st.st_mode & _FILEMODEMASK, st.st_size, name))
        if not self.response():
            return
        problem = None
        offset = 0
        while offset < st.st_size:
            fairness.checkpoint()
            want = min(CHUNK, st.st_size - offset)
            data = b""
            if problem is None:
                try:
                    data = os.pread(fd, want, offset)
                except OSError as exc:
                    problem = _os_message(path, exc)
                if not data and problem is None:
                    problem = f"{path}: file shrank during transfer"
            data = data or b"\x00" * want  # keep the stream in sync after an error
            self.peer.send(data)
            offset += len(data)
        if problem is None:
            self.peer.send(b"\x00")
        else:
            self.error(problem)
        self.response()

    def _source_dir(
        self, path: str, st: os.stat_result, ancestors: set[tuple[int, int]], depth: int
    ) -> None:
        key = (st.st_dev, st.st_ino)
        if key in ancestors or depth >= MAX_DEPTH:
            self.error(f"{path}: directory loop or nesting too deep")
            return
        try:
            entries = sorted(name for name, _ in self.fs.listdir(path))
        except (OSError, ValueError) as exc:
            self.error(_os_message(path, exc))
            return
        if self.opts.preserve and not self._send_times(st):
            return
        self.peer.send(b"D%04o 0 %s\n" % (st.st_mode & _FILEMODEMASK, _wire_name(path)))
        if not self.response():
            return
        for entry in entries:
            self.source(posixpath.join(path, entry), ancestors | {key}, depth + 1)
        self.peer.send(b"E\n")
        self.response()


__all__ = ["ScpError", "ScpHandler", "ScpOptions", "parse_scp_command"]
