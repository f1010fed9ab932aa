"""Agent forwarding for servers: paramiko.agent's ``AgentServerProxy`` and ``AgentKey``.

Owns a small ssh-agent protocol client (draft-miller-ssh-agent §4.4/§4.5:
REQUEST_IDENTITIES, SIGN_REQUEST) spoken over an ``auth-agent@openssh.com``
channel that the server opens to a client which sent
``auth-agent-req@openssh.com`` (``ssh -A``), and a private Unix socket
(``get_env()["SSH_AUTH_SOCK"]``) through which programs the server runs
(``ssh`` for a further hop, ``ssh-add -l``) reach the same agent, one
channel per connection. Replies are length-checked before anything is
allocated. Must not import the protocol core beyond the wire codec.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
from typing import TYPE_CHECKING, Any

import gevent
import gevent.lock
import gevent.pool
import gevent.socket

from geossh._facade.message import Message
from geossh._facade.pkey import PKey, UnknownKeyType
from geossh._facade.util import asbytes
from geossh.errors import SSHException
from geossh.proto import wire
from geossh.services.forward import close_quietly, pump

if TYPE_CHECKING:
    from geossh._facade.transport import Transport

SSH_AGENT_FAILURE = 5
SSH_AGENT_SUCCESS = 6
SSH_AGENTC_REQUEST_IDENTITIES = 11
SSH_AGENT_IDENTITIES_ANSWER = 12
SSH_AGENTC_SIGN_REQUEST = 13
SSH_AGENT_SIGN_RESPONSE = 14
# paramiko's spellings
SSH2_AGENTC_REQUEST_IDENTITIES = SSH_AGENTC_REQUEST_IDENTITIES
SSH2_AGENT_IDENTITIES_ANSWER = SSH_AGENT_IDENTITIES_ANSWER
SSH2_AGENTC_SIGN_REQUEST = SSH_AGENTC_SIGN_REQUEST
SSH2_AGENT_SIGN_RESPONSE = SSH_AGENT_SIGN_RESPONSE
cSSH2_AGENTC_REQUEST_IDENTITIES = bytes((SSH_AGENTC_REQUEST_IDENTITIES,))
cSSH2_AGENTC_SIGN_REQUEST = bytes((SSH_AGENTC_SIGN_REQUEST,))
SSH_AGENT_RSA_SHA2_256 = 2
SSH_AGENT_RSA_SHA2_512 = 4
ALGORITHM_FLAG_MAP = {
    "rsa-sha2-256": SSH_AGENT_RSA_SHA2_256,
    "rsa-sha2-256-cert-v01@openssh.com": SSH_AGENT_RSA_SHA2_256,
    "rsa-sha2-512": SSH_AGENT_RSA_SHA2_512,
    "rsa-sha2-512-cert-v01@openssh.com": SSH_AGENT_RSA_SHA2_512,
}
MAX_AGENT_MESSAGE = 256 * 1024  # OpenSSH's AGENT_MAX_LEN
MAX_AGENT_KEYS = 2048
MAX_LOCAL_CLIENTS = 16
_log = logging.getLogger("geossh.agent")


class AgentSSH:
    """An agent protocol client over a connected stream (paramiko.agent.AgentSSH)."""

    timeout: float | None = 30.0  # per reply; a silent agent raises SSHException

    def __init__(self) -> None:
        self._conn: Any = None
        self._keys: tuple[AgentKey, ...] = ()
        self._lock = gevent.lock.RLock()  # one request/reply at a time

    def get_keys(self) -> tuple[AgentKey, ...]:
        """The keys the agent listed when connected (no I/O)."""
        return self._keys

    def _connect(self, conn: Any) -> None:
        self._conn = conn
        ptype, reply = self._request(cSSH2_AGENTC_REQUEST_IDENTITIES)
        if ptype != SSH_AGENT_IDENTITIES_ANSWER:
            raise SSHException("could not get keys from ssh-agent")
        reader = wire.Reader(reply, 1)
        count = reader.u32()
        if count > MAX_AGENT_KEYS:
            raise SSHException(f"ssh-agent listed {count} keys")
        keys = []
        for _ in range(count):
            blob = reader.string(MAX_AGENT_MESSAGE)
            comment = reader.string(MAX_AGENT_MESSAGE).decode("utf-8", "replace")
            keys.append(AgentKey(self, blob, comment))
        self._keys = tuple(keys)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._keys = ()

    def _send_message(self, msg: Message | bytes) -> tuple[int, Message]:
        """Send one request; ``(reply type, Message positioned after the type)``."""
        ptype, reply = self._request(asbytes(msg))
        message = Message(reply)
        message.get_byte()
        return ptype, message

    def _request(self, payload: bytes) -> tuple[int, bytes]:
        with self._lock:
            if self._conn is None:
                raise SSHException("not connected to an agent")
            try:
                self._conn.sendall(struct.pack(">I", len(payload)) + payload)
                length = struct.unpack(">I", self._read_all(4))[0]
                if not 0 < length <= MAX_AGENT_MESSAGE:
                    raise SSHException(f"bad agent reply length {length}")
                reply = self._read_all(length)
            except (OSError, SSHException):
                self._close()  # the stream is out of step: drop it
                raise
            return reply[0], reply

    def _read_all(self, wanted: int) -> bytes:
        parts, got = [], 0
        while got < wanted:
            try:
                data = self._conn.recv(wanted - got)
            except TimeoutError:
                raise SSHException("ssh-agent did not answer") from None
            if not data:
                raise SSHException("lost ssh-agent")
            parts.append(data)
            got += len(data)
        return b"".join(parts)


class AgentKey(PKey):
    """A key held by an agent: public parts local, signing done by the agent.

    ``inner_key`` is the ordinary public key (None for types geossh cannot
    parse); unknown attributes are looked up there, as in paramiko.
    """

    def __init__(self, agent: AgentSSH, blob: bytes, comment: str = "") -> None:
        self.public_blob = None
        self.agent = agent
        self.blob = blob
        self.comment = comment
        self.name = wire.Reader(blob).text(256)  # type: ignore[misc]
        self.inner_key: PKey | None = None
        try:
            self.inner_key = PKey.from_type_string(self.name, blob)
            self._ssh_key = self.inner_key._ssh_key
        except (UnknownKeyType, SSHException, ValueError):
            _log.debug("Unable to derive inner_key for agent key of type %r", self.name)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner_key")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def asbytes(self) -> bytes:
        """The public key blob."""
        return self.inner_key.asbytes() if self.inner_key is not None else self.blob

    def get_name(self) -> str:
        """The key type name from the blob."""
        return self.name

    def get_bits(self) -> int:
        """Key size in bits (0 if unknown)."""
        return self.inner_key.get_bits() if self.inner_key is not None else 0

    def can_sign(self) -> bool:
        """True: the agent signs."""
        return True

    @property
    def _fields(self) -> tuple[str, bytes]:
        return self.inner_key._fields if self.inner_key is not None else (self.name, self.blob)

    def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> bytes:  # type: ignore[override]
        """Have the agent sign ``data``; the signature blob (string alg + string sig).

        ``algorithm`` ``rsa-sha2-256``/``-512`` asks an RSA key for SHA-2.
        """
        request = (
            cSSH2_AGENTC_SIGN_REQUEST
            + wire.string(self.asbytes())
            + wire.string(data)
            + wire.u32(ALGORITHM_FLAG_MAP.get(algorithm or "", 0))
        )
        ptype, reply = self.agent._request(request)
        if ptype != SSH_AGENT_SIGN_RESPONSE:
            raise SSHException("key cannot be used for signing")
        return wire.Reader(reply, 1).string(MAX_AGENT_MESSAGE)

    def verify_ssh_sig(self, data: bytes, msg: Message) -> bool:
        """Verify with the public key."""
        return self.inner_key is not None and self.inner_key.verify_ssh_sig(data, msg)


class AgentServerProxy(AgentSSH):
    """Reach the client's forwarded agent from the server (paramiko.agent.AgentServerProxy).

    Use after the client's ``auth-agent-req@openssh.com`` was accepted
    (``check_channel_forward_agent_request``). ``connect()`` opens an
    ``auth-agent@openssh.com`` channel and lists the keys (``get_keys()``);
    ``get_env()`` names a private Unix socket for programs the server runs.
    ``close()`` removes it; it also closes when the connection ends.
    """

    def __init__(self, t: Transport) -> None:
        super().__init__()
        self._transport = t
        self._dir = tempfile.mkdtemp("sshproxy")
        os.chmod(self._dir, 0o700)
        self._file = os.path.join(self._dir, "sshproxy.ssh")
        self._closed = False
        self._greenlets = gevent.pool.Group()
        try:
            self._listener = _listen_private(self._file)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._greenlets.spawn(self._serve)
        t.add_close_callback(self.close)

    def __enter__(self) -> AgentServerProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _open_channel(self) -> Any:
        if gevent.getcurrent() is self._transport._greenlet:
            raise SSHException("open the agent from another greenlet than the connection's")
        chan = self._transport.open_channel("auth-agent@openssh.com", timeout=self.timeout)
        chan.set_name(f"{chan.get_id()} auth-agent")
        return chan

    def connect(self) -> None:
        """Open an agent channel to the client and load its key list."""
        chan = self._open_channel()
        chan.settimeout(self.timeout)
        self._connect(chan)

    def close(self) -> None:
        """Remove the socket, stop its proxies and drop the agent channel (idempotent)."""
        if self._closed:
            return
        self._closed = True
        close_quietly(self._listener)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._greenlets.kill(block=False)
        self._close()

    def get_env(self) -> dict[str, str]:
        """``{"SSH_AUTH_SOCK": path}`` for programs that should use the forwarded agent."""
        return {"SSH_AUTH_SOCK": self._get_filename()}

    def _get_filename(self) -> str:
        return self._file

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if len(self._greenlets) > MAX_LOCAL_CLIENTS:
                close_quietly(conn)
                continue
            self._greenlets.spawn(self._proxy, conn)

    def _proxy(self, conn: Any) -> None:
        try:
            pump(self._open_channel(), conn)
        except (SSHException, OSError) as exc:
            _log.info("agent proxy: %s", exc)
        finally:
            close_quietly(conn)


def _listen_private(path: str) -> Any:
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(MAX_LOCAL_CLIENTS)
    except BaseException:
        sock.close()
        raise
    return sock
