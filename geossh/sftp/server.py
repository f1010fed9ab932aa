"""``SFTPServer``: the SFTP subsystem engine (paramiko.sftp_server).

Owns the session loop: large reads from the channel, framing of every
complete request in the buffer, scheduling, batched replies, and the end of
the session (exit-status 0, handles closed). Request semantics live in
``requests.py``; the wire codec in ``protocol.py``.

Two scheduling modes, chosen by the interface's ``request_concurrency``:

* inline (0): each request runs in this greenlet in arrival order; all
  replies produced from one read go out in one ``sendall`` (flushed early
  past ``FLUSH_BYTES``). Memory stays bounded because a peer that does not
  read blocks our ``sendall`` and so stops our reads.
* lanes (>0): requests on one handle run in order in that handle's lane,
  path requests in one shared lane; lanes run concurrently in a bounded pool
  of greenlets, so one slow request does not stall the others. Requests
  queued or awaiting send are bounded in count and bytes; past the bound we
  stop reading, and SSH flow control stops the client.

In both modes one session holds the hub for at most a time slice
(``geossh._green.fairness``): between requests, and between the bounded
steps of a long one (hashing for check-file, a path walk, a copy), replies
made so far are sent and other connections run. A request whose channel
has closed stops at its next step.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from gevent.event import Event
from gevent.pool import Pool

from geossh._facade.server import ServerInterface, SubsystemHandler
from geossh._green import fairness
from geossh.logtext import printable
from geossh.sftp import protocol as p
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.base import BaseSFTP
from geossh.sftp.handle import convert_errno as _convert_errno
from geossh.sftp.interface import SFTPServerInterface
from geossh.sftp.requests import RequestHandlers

if TYPE_CHECKING:
    from geossh._facade.channel import Channel
    from geossh._facade.transport import Transport

RECV_SIZE = 256 * 1024
FLUSH_BYTES = 1024 * 1024
LARGE_PART = 64 * 1024
MAX_QUEUED_REQUESTS = 256
MAX_QUEUED_BYTES = 8 * 1024 * 1024
MAX_OPEN_HANDLES = 1024
#: draft-ietf-secsh-filexfer-02 §3: servers should accept packets of 34000 bytes.
MIN_REQUEST_SIZE = 34000
#: Limits an ``SFTPServerInterface`` may override with attributes of the same name.
LIMITS = ("max_request_size", "max_queued_requests", "max_queued_bytes", "max_open_handles")


def _draft_symlink_order(transport: Any) -> bool:
    """Does this client send SYMLINK in the draft's order (link path first)?

    OpenSSH, paramiko and most clients send the target first (OpenSSH's
    historical swap). asyncssh sends the target first only to servers whose
    version string names OpenSSH or paramiko; mirror that rule.
    """
    remote = str(getattr(transport, "remote_version", "") or "")
    local = str(getattr(transport, "local_version", "") or "")
    return "AsyncSSH" in remote and not any(name in local for name in ("OpenSSH", "paramiko"))


class _SessionEnd(Exception):
    """Stop serving (protocol violation or a dead channel)."""


def _channel_gone(channel: Any) -> bool:
    """Has the channel been closed (by the peer or by us)?"""
    return bool(getattr(channel, "closed", False))


class _Write(NamedTuple):
    """A WRITE queued in a lane, its data copied out of the receive buffer once."""

    rid: int
    handle: bytes
    offset: int
    data: bytes


_LaneBody = bytes | _Write


def _lane_body(ptype: int, buf: bytearray, start: int, stop: int) -> _LaneBody:
    """What a lane keeps of a request: a decoded WRITE (one copy of its data), else
    the request's bytes (a malformed WRITE too: it fails in order, in its lane)."""
    if ptype == p.CMD_WRITE:
        try:
            rid, handle, offset, dstart, dend = p.decode_write_span(buf, start, stop)
        except p.MalformedRequest:
            pass
        else:
            return _Write(rid, handle, offset, p.copy_out(buf, dstart, dend))
    return p.copy_out(buf, start, stop)


class SFTPServer(BaseSFTP, RequestHandlers, SubsystemHandler):
    """SFTP subsystem handler; register with
    ``transport.set_subsystem_handler("sftp", SFTPServer, MyInterface, *args)``.

    ``sftp_si(server, *args, **kwargs)`` becomes ``self.server``. Attributes
    kept from paramiko: ``sock``, ``server``, ``file_table``,
    ``folder_table``, ``next_handle``, ``logger``, ``ultra_debug``.

    Limits (docs/limits.md): ``max_request_size`` (bytes in one request;
    larger ends the session), ``max_queued_requests``/``max_queued_bytes``
    (requests read but not yet answered in lane mode; past them reading
    stops, so SSH flow control stops the client) and ``max_open_handles``.
    Set them on a subclass, or as attributes of the ``SFTPServerInterface``.
    """

    max_request_size = p.MAX_PACKET_ACCEPTED
    max_queued_requests = MAX_QUEUED_REQUESTS
    max_queued_bytes = MAX_QUEUED_BYTES

    def __init__(
        self,
        channel: Channel,
        name: str,
        server: ServerInterface,
        sftp_si: type[SFTPServerInterface] = SFTPServerInterface,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        BaseSFTP.__init__(self)
        SubsystemHandler.__init__(self, channel, name, server)
        transport = channel.get_transport()
        get_log_channel = getattr(transport, "get_log_channel", None)
        log_channel = get_log_channel() if get_log_channel else "geossh.transport"
        self.logger = logging.getLogger(f"{log_channel}.sftp")
        get_hexdump = getattr(transport, "get_hexdump", None)
        self.ultra_debug = bool(get_hexdump()) if get_hexdump else False
        self.next_handle = 1
        self.file_table: dict[bytes, Any] = {}
        self.folder_table: dict[bytes, Any] = {}
        self.max_open_handles = MAX_OPEN_HANDLES
        self.sock = channel
        self.server = sftp_si(server, *args, **kwargs)
        self._init_handlers()
        self._prefix = ""
        self._started = False
        self.symlink_draft_order = False
        # lane-mode state
        self._lanes: dict[bytes | None, deque[tuple[int, _LaneBody, int]]] = {}
        self._pool: Pool | None = None
        self._unsent: list[bytes] = []  # replies made but not sent (inline mode)
        self._outbox: list[bytes] = []
        self._out_charge = 0
        self._out_count = 0
        self._writing = False
        self._queued = 0
        self._queued_bytes = 0
        self._room = Event()
        self._dead: BaseException | None = None

    def _pause(self) -> None:
        """A long request's yield point: once the slice is used up, send the replies
        already made and let other connections run; stop if the channel has gone (a
        closed session must not go on hashing a huge file)."""
        fairness.checkpoint()  # the held replies go first (``before_yield`` in ``_serve``)
        if _channel_gone(self.sock):
            raise _SessionEnd("channel closed during a request")

    def _send_unsent(self) -> None:
        """Send the replies held so far before this session's greenlet yields."""
        try:
            self._flush()
        except (OSError, EOFError) as exc:
            raise _SessionEnd(f"output failed: {exc}") from None

    def _log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.log(level, self._prefix + msg, *args, **kwargs)

    # -- SubsystemHandler ------------------------------------------------------------
    def start_subsystem(self, name: str, transport: Transport, channel: Channel) -> None:
        """Serve requests until the client's EOF, then send exit-status 0."""
        self.sock = channel
        self._prefix = f"[chan {channel.get_name()}] "
        self.symlink_draft_order = _draft_symlink_order(transport)
        self._log(logging.DEBUG, "Started sftp server on channel %r", channel)
        self._apply_limits()
        concurrency = int(getattr(self.server, "request_concurrency", 0) or 0)
        if concurrency > 0:
            self._pool = Pool(concurrency)
        try:
            with fairness.before_yield(self._send_unsent):  # path walks, copies, user code
                self._serve(channel)
        except _SessionEnd as exc:
            self._log(logging.INFO, "SFTP session ended: %s", printable(exc))
            self._exit_status(channel, 1)
            return
        except (OSError, EOFError) as exc:
            self._log(logging.DEBUG, "SFTP channel error: %s", exc)
            return
        self._log(logging.DEBUG, "EOF -- end of session")
        self._exit_status(channel, 0)

    def finish_subsystem(self) -> None:
        """``session_ended()``, close the channel, close every open handle."""
        if self._pool is not None:  # only still busy after a protocol violation
            self._pool.kill(block=True, timeout=5)
        try:
            self.server.session_ended()
        finally:
            super().finish_subsystem()
            handles = [*self.file_table.values(), *self.folder_table.values()]
            self.file_table = {}
            self.folder_table = {}
            for handle in handles:
                try:
                    handle.close()
                except Exception:
                    self._log(logging.DEBUG, "Error closing handle", exc_info=True)

    def _apply_limits(self) -> None:
        """Take limit overrides from the interface; keep requests of 34000 bytes possible."""
        for name in LIMITS:
            value = getattr(self.server, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                setattr(self, name, value)
        self.max_request_size = max(MIN_REQUEST_SIZE, int(self.max_request_size))

    def _exit_status(self, channel: Channel, code: int) -> None:
        try:
            channel.send_exit_status(code)
        except Exception as exc:
            self._log(logging.DEBUG, "Could not send exit-status: %s", exc)

    # -- paramiko's static helpers -------------------------------------------------------
    @staticmethod
    def convert_errno(e: int | None) -> int:
        """errno → SFTP code: EACCES→3, ENOENT/ENOTDIR→2, anything else→4 (paramiko's map)."""
        return _convert_errno(e)

    @staticmethod
    def set_file_attr(filename: str, attr: SFTPAttributes) -> None:
        """Apply the attributes present in ``attr`` to a local file.

        Unlike paramiko, FLAG_SIZE truncates or extends with ``os.truncate``
        (paramiko empties the file first), and it is applied before the
        times so that FLAG_AMTIME sticks.
        """
        if attr._flags & attr.FLAG_SIZE:
            os.truncate(filename, attr.st_size)  # type: ignore[arg-type]
        if sys.platform != "win32":
            if attr._flags & attr.FLAG_PERMISSIONS:
                os.chmod(filename, attr.st_mode)  # type: ignore[arg-type]
            if attr._flags & attr.FLAG_UIDGID:
                os.chown(filename, attr.st_uid, attr.st_gid)  # type: ignore[arg-type]
        if attr._flags & attr.FLAG_AMTIME:
            os.utime(filename, (attr.st_atime, attr.st_mtime))  # type: ignore[arg-type]

    # -- session loop ---------------------------------------------------------------------
    def _serve(self, channel: Channel) -> None:
        recv = channel.recv
        buf = bytearray()
        while True:
            data = recv(RECV_SIZE)
            if not data:
                break
            fairness.begin()
            buf += data
            consumed = self._process(buf, len(buf))
            if consumed:
                try:
                    del buf[:consumed]
                except BufferError:  # a write-buffer view is still referenced somewhere
                    buf = bytearray(buf[consumed:])
            if self._dead is not None:
                raise _SessionEnd(f"output failed: {self._dead}")
        if self._pool is not None:
            self._pool.join()
            if self._dead is not None:
                raise _SessionEnd(f"output failed: {self._dead}")

    def _process(self, buf: bytearray, end: int) -> int:
        """Run every complete request in ``buf[:end]``; return the bytes consumed."""
        out = self._unsent
        pending = 0
        pos = 0
        lanes = self._pool is not None
        try:
            while True:
                frame = p.frame_at(buf, pos, end, self.max_request_size)
                if frame is None:
                    break
                ptype, start, stop = frame
                pos = stop
                if not self._started:
                    self._handshake(ptype, buf, start, stop, out)
                    self._flush()
                elif lanes:
                    self._submit(ptype, buf, start, stop)
                else:
                    if ptype == p.CMD_READ:
                        pending += self._execute_read(buf, start, stop, out) + 64
                    else:
                        count = len(out)
                        self._execute(ptype, buf, start, stop, out)
                        if len(out) > count:
                            pending += len(out[-1])
                    if pending > FLUSH_BYTES:  # bound what one read can make us hold
                        self._flush()
                        pending = 0
                if fairness.expired():  # others get the hub; the client sees progress
                    self._pause()
        except p.ProtocolViolation as exc:
            self._flush()
            raise _SessionEnd(str(exc)) from None
        self._flush()
        return pos

    def _flush(self) -> None:
        """Send the replies not sent yet (inline mode keeps them in ``_unsent``)."""
        out = self._unsent
        if not out:
            return
        if self._pool is not None:
            self._emit(out[:], 0, 0)
        else:
            self._write(out)
            fairness.begin()  # the write may have waited for the client
        out.clear()

    def _write(self, parts: list[bytes]) -> None:
        """Send parts in order: small ones joined, large DATA payloads passed as they
        are (joining them would copy every byte read once more)."""
        sendall = self.sock.sendall
        small: list[bytes] = []
        for part in parts:
            if len(part) < LARGE_PART:
                small.append(part)
                continue
            if small:
                sendall(small[0] if len(small) == 1 else b"".join(small))
                small = []
            sendall(part)
        if small:
            sendall(small[0] if len(small) == 1 else b"".join(small))

    def _handshake(
        self, ptype: int, buf: bytearray, start: int, stop: int, out: list[bytes]
    ) -> None:
        if ptype != p.CMD_INIT:
            raise p.ProtocolViolation(f"request type {ptype} before INIT")
        try:
            version = p.decode_init(buf, start, stop)
        except p.MalformedRequest:
            raise p.ProtocolViolation("malformed INIT") from None
        self._log(logging.DEBUG, "Client SFTP version %d; replying %d", version, p._VERSION)
        out.append(p.encode_version(self.extensions))
        self._started = True
        self.server.session_started()

    # -- executing requests ----------------------------------------------------------------
    def _execute_read(self, buf: p.Buffer, start: int, stop: int, out: list[bytes]) -> int:
        try:
            return self._h_read(buf, start, stop, out)
        except _SessionEnd:
            raise
        except Exception as exc:
            self._request_failed(p.CMD_READ, buf, start, stop, out, exc)
            return 0

    def _execute_write(self, write: _Write, out: list[bytes]) -> None:
        try:
            self._h_write_owned(write.rid, write.handle, write.offset, write.data, out)
        except _SessionEnd:
            raise
        except Exception as exc:
            self._report_failure(p.CMD_WRITE, write.rid, out, exc)

    def _execute(self, ptype: int, buf: p.Buffer, start: int, stop: int, out: list[bytes]) -> None:
        try:
            if ptype == p.CMD_WRITE:
                self._h_write(buf, start, stop, out)
                return
            if ptype == p.CMD_READ:
                self._h_read(buf, start, stop, out)
                return
            handler = self._handlers.get(ptype)
            if handler is None:
                self._unknown(ptype, buf, start, stop, out)
                return
            rid, fields = p.decode_request(ptype, buf, start, stop)
            if self.logger.isEnabledFor(logging.DEBUG):
                shown = printable(fields[:2])
                self._log(logging.DEBUG, "Request: %s %s", p.CMD_NAMES[ptype], shown)
            handler(rid, out, *fields)
        except _SessionEnd:
            raise
        except Exception as exc:
            self._request_failed(ptype, buf, start, stop, out, exc)

    def _request_failed(
        self, ptype: int, buf: p.Buffer, start: int, stop: int, out: list[bytes], exc: Exception
    ) -> None:
        if isinstance(exc, p.MalformedRequest):
            name = p.CMD_NAMES.get(ptype)
            self._log(logging.DEBUG, "Malformed %s request: %s", name, printable(exc))
            if exc.request_id is not None:
                out.append(p.encode_status(exc.request_id, p.SFTP_BAD_MESSAGE, str(exc)))
            return
        self._report_failure(ptype, p.request_id(buf, start, stop), out, exc)

    def _report_failure(
        self, ptype: int, rid: int | None, out: list[bytes], exc: Exception
    ) -> None:
        """Log a request whose handler raised; answer FAILURE (BAD_MESSAGE for EINVAL)."""
        name = p.CMD_NAMES.get(ptype, str(ptype))
        self.logger.error(
            "%sException in SFTP %s request: %s", self._prefix, name, exc, exc_info=True
        )
        if rid is not None:
            code = p.SFTP_FAILURE
            if isinstance(exc, OverflowError) or getattr(exc, "errno", None) == errno.EINVAL:
                code = p.SFTP_BAD_MESSAGE
            out.append(p.encode_status(rid, code))

    def _unknown(self, ptype: int, buf: p.Buffer, start: int, stop: int, out: list[bytes]) -> None:
        rid = p.request_id(buf, start, stop)
        self._log(logging.DEBUG, "Unsupported request type %d", ptype)
        if ptype == p.CMD_INIT:
            return  # a repeated INIT has no id to answer
        if rid is not None:
            out.append(p.encode_status(rid, p.SFTP_OP_UNSUPPORTED))

    # -- lane scheduling -------------------------------------------------------------------
    def _submit(self, ptype: int, buf: bytearray, start: int, stop: int) -> None:
        body = _lane_body(ptype, buf, start, stop)
        charge = stop - start + 512
        if ptype == p.CMD_READ and stop - start >= 12:
            charge += min(int.from_bytes(buf[stop - 4 : stop], "big"), p.MAX_READ)
        while (
            self._queued >= self.max_queued_requests or self._queued_bytes >= self.max_queued_bytes
        ) and self._dead is None:
            self._room.clear()
            self._room.wait()
        if self._dead is not None:
            return
        self._queued += 1
        self._queued_bytes += charge
        key = p.lane_key(ptype, buf, start, stop)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append((ptype, body, charge))
            return
        lane = self._lanes[key] = deque([(ptype, body, charge)])
        assert self._pool is not None
        self._pool.spawn(self._run_lane, key, lane)

    def _run_lane(self, key: bytes | None, lane: deque[tuple[int, _LaneBody, int]]) -> None:
        fairness.begin()
        try:
            while lane and self._dead is None:
                ptype, body, charge = lane.popleft()
                out: list[bytes] = []
                try:
                    if isinstance(body, _Write):
                        self._execute_write(body, out)
                    else:
                        self._execute(ptype, body, 0, len(body), out)
                except _SessionEnd as exc:
                    self._dead = exc
                    self._room.set()
                    return
                self._emit(out, 1, charge)
                fairness.checkpoint()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _emit(self, out: list[bytes], count: int, charge: int) -> None:
        """Queue replies; the first greenlet to get here writes for everyone."""
        self._outbox.extend(out)
        self._out_count += count
        self._out_charge += charge
        if self._writing:
            return
        self._writing = True
        try:
            while self._outbox and self._dead is None:
                parts, self._outbox = self._outbox, []
                count, self._out_count = self._out_count, 0
                charge, self._out_charge = self._out_charge, 0
                self._write(parts)
                self._queued -= count
                self._queued_bytes -= charge
                self._room.set()
        except Exception as exc:
            self._dead = exc
            self._outbox.clear()
            self._room.set()
        finally:
            self._writing = False
