"""OpenSSH ``authorized_keys`` files (sshd(8), "AUTHORIZED_KEYS FILE FORMAT").

Parses lines of ``[options] keytype base64 [comment]`` into
``AuthorizedKey`` entries and answers sshd's questions: which entry
authorises this key from this address now (``find``), and which
``cert-authority`` entry authorises this certificate (``find_ca``,
``authorize_certificate``, which also applies the certificate's
``permit-*`` extensions and ``force-command`` to the entry it returns, as
sshd does). Options follow OpenSSH's ``sshauthopt_parse``:
case-insensitive names, double-quoted values in which ``\\"`` is a quote,
``restrict`` then re-enabling flags in order, duplicate ``command``/
``from``/``principals`` rejected, the earliest ``expiry-time`` kept.

A line that cannot be parsed is skipped with a warning on the
``geossh.auth`` logger; nothing here raises for bad content. Pure apart
from reading the file in ``AuthorizedKeys.load`` and, when no ``now`` is
passed, reading the clock.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import functools
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from geossh.proto.keys import (
    KEY_TYPES,
    SK_KEY_TYPES,
    Certificate,
    KeyParseError,
    SSHKey,
    blob_key_type,
    public_key_from_blob,
    validate_user_certificate,
)

log = logging.getLogger("geossh.auth")

MAX_LINE = 16 * 1024  # longer lines are skipped (an 16384-bit RSA key fits)
MAX_ENVIRONMENT = 1024  # OpenSSH SSH_AUTHOPT_ENV_MAX
MAX_PERMITS = 4096  # OpenSSH SSH_AUTHOPT_PERMIT_MAX
_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]*\Z")
_ENV_NAME_RE = re.compile(r"[A-Za-z0-9_]+\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
# sshd separates fields with spaces and tabs and lines with "\n" only; str.split()
# and str.splitlines() would also break on Unicode blanks such as U+2028 or \x1c.
_BLANK = " \t"
_BLANKS = re.compile(r"[ \t]+")
_FLAGS = ("port-forwarding", "agent-forwarding", "x11-forwarding", "pty", "user-rc")
# Certificate extensions (PROTOCOL.certkeys) and the entry fields they gate.
CERT_PERMITS = {
    "permit-port-forwarding": "permit_port_forwarding",
    "permit-agent-forwarding": "permit_agent_forwarding",
    "permit-X11-forwarding": "permit_x11_forwarding",
    "permit-pty": "permit_pty",
    "permit-user-rc": "permit_user_rc",
}
_VALUED = (
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
)


class LineError(ValueError):
    """One authorized_keys line is malformed (reported, then skipped)."""


@dataclasses.dataclass(frozen=True)
class AuthorizedKey:
    """One authorized_keys entry: the key, its comment and its parsed options."""

    key: SSHKey
    comment: str = ""
    line_number: int = 0
    options: tuple[tuple[str, str | None], ...] = ()  # raw, in order, names lowercased
    cert_authority: bool = False
    command: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    from_patterns: str | None = None
    principals: tuple[str, ...] | None = None
    expiry_time: int | None = None
    restrict: bool = False
    permit_port_forwarding: bool = True
    permit_agent_forwarding: bool = True
    permit_x11_forwarding: bool = True
    permit_pty: bool = True
    permit_user_rc: bool = True
    permitopen: tuple[tuple[str, int | None], ...] = ()
    permitlisten: tuple[tuple[str, int | None], ...] = ()
    tunnel: str | None = None
    touch_required: bool = True
    verify_required: bool = False

    def allows_source(self, address: str | None, host: str | None = None) -> bool:
        """The ``from=`` check; with a restriction and no address, False."""
        if self.from_patterns is None:
            return True
        if address is None:
            return False
        return match_host_and_ip(host if host is not None else address, address, self.from_patterns)

    def is_expired(self, now: float) -> bool:
        """True once ``expiry-time`` has passed."""
        return self.expiry_time is not None and self.expiry_time < now

    def restricted_by(self, cert: Certificate) -> AuthorizedKey:
        """This ``cert-authority`` entry as it applies to a login with ``cert`` (sshd's merge).

        Each ``permit_*`` holds only if the line allows it and the certificate
        carries its ``permit-*`` extension, so a certificate made with
        ``ssh-keygen -O no-pty`` (or ``-O clear``) gets no pty whatever the
        line says; ``touch_required`` stays unless both waive it and
        ``verify_required`` holds if either asks (``verify-required``); the
        certificate's ``force-command`` applies when the line has no
        ``command=`` (``authorize_certificate`` refuses two that differ).
        """
        permits: dict[str, Any] = {
            field: bool(getattr(self, field)) and extension in cert.extensions
            for extension, field in CERT_PERMITS.items()
        }
        return dataclasses.replace(
            self,
            command=self.command if self.command is not None else cert.force_command,
            touch_required=self.touch_required or cert.touch_required,
            verify_required=self.verify_required or cert.verify_required,
            **permits,
        )

    def allows_open(self, host: str, port: int) -> bool:
        """May a ``direct-tcpip`` channel go to ``host:port`` (``permitopen``)?"""
        if not self.permit_port_forwarding:
            return False
        return not self.permitopen or _permit_match(self.permitopen, host, port)

    def allows_listen(self, host: str, port: int) -> bool:
        """May a ``tcpip-forward`` listen on ``host:port`` (``permitlisten``)?"""
        if not self.permit_port_forwarding:
            return False
        return not self.permitlisten or _permit_match(self.permitlisten, host, port)


def _is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts ``²`` and fullwidth digits)."""
    return text.isascii() and text.isdigit()


def _permit_match(permits: Sequence[tuple[str, int | None]], host: str, port: int) -> bool:
    return any(
        (p_port is None or p_port == port) and (p_host == "*" or p_host == host)
        for p_host, p_port in permits
    )


# -- pattern matching (OpenSSH match.c / addrmatch.c) --------------------------


@functools.lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL)


def match_pattern(string: str, pattern: str) -> bool:
    """Shell-style match with ``*`` and ``?`` only."""
    return _pattern_regex(pattern).fullmatch(string) is not None


def _addr_match_list(address: str, patterns: str) -> int:
    """1 match, 0 none, -1 negated match, -2 malformed list (``addr_match_list``)."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return 0
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    result = 0
    for entry in patterns.split(","):
        neg = entry.startswith("!")
        entry = entry[1:] if neg else entry
        if not entry:
            return -2
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            hit = match_pattern(address, entry)  # not an address: a wildcard pattern
        else:
            if ipaddress.ip_interface(entry).ip != network.network_address:
                return -2  # host bits set: OpenSSH's "inconsistent mask length"
            hit = addr.version == network.version and addr in network
        if hit:
            if neg:
                return -1
            result = 1
    return result


def _match_pattern_list(string: str, patterns: str) -> int:
    """1 match, 0 none, -1 negated match (``match_pattern_list``, lowercased)."""
    got_positive = 0
    for entry in patterns.lower().split(","):
        neg = entry.startswith("!")
        if match_pattern(string, entry[1:] if neg else entry):
            if neg:
                return -1
            got_positive = 1
    return got_positive


def match_host_and_ip(host: str, address: str, patterns: str) -> bool:
    """sshd's ``from=`` rule: a negated hit on host or address denies; else any hit allows."""
    mip = _addr_match_list(address, patterns)
    if mip in (-1, -2):
        return False
    mhost = _match_pattern_list(host.lower(), patterns)
    return mhost != -1 and (mhost == 1 or mip == 1)


# -- option parsing -----------------------------------------------------------


def _dequote(text: str, pos: int) -> tuple[str, int]:
    """Read ``"value"`` at ``pos`` (``\\"`` is a quote); returns value and next position."""
    if pos >= len(text) or text[pos] != '"':
        raise LineError("missing start quote")
    out = []
    pos += 1
    while pos < len(text) and text[pos] != '"':
        if text[pos] == "\\" and text[pos + 1 : pos + 2] == '"':
            pos += 1
        out.append(text[pos])
        pos += 1
    if pos >= len(text):
        raise LineError("missing end quote")
    return "".join(out), pos + 1


def split_options(line: str) -> list[tuple[str, str | None]]:
    """Parse ``name[="value"],...`` into (lowercased name, value or None) pairs."""
    result: list[tuple[str, str | None]] = []
    pos = 0
    while True:
        match = _NAME_RE.match(line, pos)
        if match is None:
            raise LineError(f"bad option at column {pos + 1}")
        name, pos = match.group().lower(), match.end()
        value = None
        if line[pos : pos + 1] == "=":
            value, pos = _dequote(line, pos + 1)
        result.append((name, value))
        if pos == len(line):
            return result
        if line[pos] != ",":
            raise LineError(f"unexpected {line[pos]!r} after option {name!r}")
        pos += 1
        if pos == len(line):
            raise LineError("unexpected end of options")


def _options_end(line: str) -> int:
    """Index of the first unquoted blank (``sshkey_advance_past_options``)."""
    quoted = False
    i = 0
    while i < len(line) and (quoted or line[i] not in " \t"):
        if line[i] == "\\" and line[i + 1 : i + 2] == '"':
            i += 1
        elif line[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise LineError("unterminated quote in options")
    return i


def parse_expiry_time(text: str) -> int:
    """``YYYYMMDD[HHMM[SS]]`` in local time, or UTC with a ``Z``/``UTC`` suffix."""
    utc = False
    for suffix in ("z", "utc"):
        if len(text) > len(suffix) and text.lower().endswith(suffix):
            text, utc = text[: -len(suffix)], True
            break
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if len(text) not in formats or not _is_digits(text):
        raise LineError("invalid expiry-time")
    try:
        when = datetime.datetime.strptime(text, formats[len(text)])
    except ValueError:
        raise LineError("invalid expiry-time") from None
    if utc:
        when = when.replace(tzinfo=datetime.timezone.utc)
    stamp = int(when.timestamp())
    if stamp <= 0:
        raise LineError("invalid expiry-time")
    return stamp


def _parse_permit(value: str, listen: bool) -> tuple[str, int | None]:
    if listen and ":" not in value:
        value = "*:" + value  # a bare port: any listen address
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise LineError("invalid permission hostname")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or ":" in host:
            raise LineError("invalid permission hostname")
    if port_text == "*":
        return host, None
    if not _is_digits(port_text) or not 0 < int(port_text) <= 65535:
        raise LineError("invalid permission port")
    return host, int(port_text)


_FLAG_FIELDS = {
    "port-forwarding": "permit_port_forwarding",
    "agent-forwarding": "permit_agent_forwarding",
    "x11-forwarding": "permit_x11_forwarding",
    "pty": "permit_pty",
    "user-rc": "permit_user_rc",
    "touch-required": "touch_required",
    "verify-required": "verify_required",
}


def _apply_flag(fields: dict[str, Any], name: str) -> None:
    if name == "restrict":
        fields["restrict"] = True
        for flag in _FLAGS:
            fields[_FLAG_FIELDS[flag]] = False
    elif name == "cert-authority":
        fields["cert_authority"] = True
    elif name in _FLAG_FIELDS:
        fields[_FLAG_FIELDS[name]] = True
    elif name.startswith("no-") and name[3:] in _FLAG_FIELDS:
        fields[_FLAG_FIELDS[name[3:]]] = False
    else:
        raise LineError(f"unknown option {name!r}")


def _apply_single(fields: dict[str, Any], name: str, value: str) -> None:
    """``command``, ``from``, ``principals``: at most once each."""
    key = {"command": "command", "from": "from_patterns", "principals": "principals"}[name]
    if fields.get(key) is not None:
        raise LineError(f"multiple {name!r} clauses")
    if name == "from":
        if not value or _addr_match_list("127.0.0.1", value) == -2:
            raise LineError("invalid from= pattern list")
        fields[key] = value
    elif name == "principals":
        entries = value.split(",")
        fields[key] = tuple(entries[: entries.index("")] if "" in entries else entries)
    else:
        fields[key] = value


def _apply_valued(fields: dict[str, Any], name: str, value: str) -> None:
    if name in ("command", "from", "principals"):
        _apply_single(fields, name, value)
    elif name == "expiry-time":
        stamp = parse_expiry_time(value)
        current = fields.get("expiry_time")
        fields["expiry_time"] = stamp if current is None else min(current, stamp)
    elif name == "environment":
        env_name, sep, env_value = value.partition("=")
        if not sep or not _ENV_NAME_RE.match(env_name):
            raise LineError("invalid environment string")
        env = fields.setdefault("environment", [])
        if len(env) >= MAX_ENVIRONMENT:
            raise LineError("too many environment strings")
        if all(n != env_name for n, _ in env):  # first one wins
            env.append((env_name, env_value))
    elif name in ("permitopen", "permitlisten"):
        permits = fields.setdefault(name, [])
        if len(permits) >= MAX_PERMITS:
            raise LineError("too many permission directives")
        permits.append(_parse_permit(value, listen=name == "permitlisten"))
    else:  # tunnel
        if value != "any" and not _is_digits(value):
            raise LineError("invalid tun device")
        fields["tunnel"] = value


def parse_options(options: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """Turn (name, value) pairs into ``AuthorizedKey`` keyword arguments."""
    fields: dict[str, Any] = {"options": tuple(options)}
    for name, value in options:
        if name in _VALUED:
            if value is None:
                raise LineError(f"option {name!r} needs a quoted value")
            _apply_valued(fields, name, value)
        elif value is not None:
            raise LineError(f"option {name!r} takes no value")
        else:
            _apply_flag(fields, name)
    for name in ("environment", "permitopen", "permitlisten"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return fields


class UnsupportedKeyLine(LineError):
    """A well-formed line for a key type geossh does not support."""


def _read_key(text: str) -> tuple[SSHKey, str] | None:
    """``type base64 [comment]`` → key and comment; None if ``text`` is no key."""
    parts = _BLANKS.split(text, 2)
    if len(parts) < 2 or not _TYPE_RE.match(parts[0]):
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
        if blob_key_type(blob) != parts[0]:
            return None
    except (binascii.Error, ValueError):
        return None
    if parts[0] not in KEY_TYPES and parts[0] not in SK_KEY_TYPES:
        raise UnsupportedKeyLine(f"unsupported key type {parts[0]!r}")
    comment = parts[2].strip(_BLANK) if len(parts) > 2 else ""
    return public_key_from_blob(blob), comment


def parse_line(line: str, line_number: int = 0) -> AuthorizedKey | None:
    """Parse one line; None for blank lines and comments.

    Raises ``LineError`` (``UnsupportedKeyLine`` for unsupported key types) or
    ``KeyParseError`` for a bad line.
    """
    text = line.strip(_BLANK + "\r\n")
    if not text or text.startswith("#"):
        return None
    if len(text) > MAX_LINE:
        raise LineError("line too long")
    found = _read_key(text)
    options: list[tuple[str, str | None]] = []
    if found is None:
        end = _options_end(text)
        options = split_options(text[:end])
        found = _read_key(text[end:].lstrip(_BLANK))
        if found is None:
            raise LineError("no valid key after options")
    fields = parse_options(options)
    if fields.get("principals") is not None and not fields.get("cert_authority"):
        raise LineError("principals= on a key that is not a cert-authority")
    return AuthorizedKey(key=found[0], comment=found[1], line_number=line_number, **fields)


def _as_ssh_key(key: object) -> SSHKey:
    """Accept a core ``SSHKey`` or a ``PKey`` (which carries one as ``ssh_key``)."""
    ssh_key = key if isinstance(key, SSHKey) else getattr(key, "ssh_key", None)
    if not isinstance(ssh_key, SSHKey):
        raise TypeError(f"expected an SSHKey or PKey, got {type(key).__name__}")
    return ssh_key


class AuthorizedKeys:
    """The usable entries of one authorized_keys file, in file order."""

    def __init__(self, entries: Sequence[AuthorizedKey] = (), source: str = "<string>") -> None:
        self.entries: tuple[AuthorizedKey, ...] = tuple(entries)
        self.source = source
        self._by_blob: dict[bytes, list[AuthorizedKey]] = {}
        for entry in self.entries:
            self._by_blob.setdefault(entry.key.public_blob, []).append(entry)

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> AuthorizedKeys:
        """Parse file contents; bad lines are logged and skipped."""
        entries = []
        for number, line in enumerate(text.split("\n"), start=1):
            try:
                entry = parse_line(line, number)
            except UnsupportedKeyLine as exc:
                log.info("%s line %d skipped: %s", source, number, exc)
            except (LineError, KeyParseError) as exc:
                log.warning("%s line %d skipped: %s", source, number, exc)
            else:
                if entry is not None:
                    entries.append(entry)
        return cls(entries, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuthorizedKeys:
        """Read and parse a file; an unreadable file is logged and yields no entries."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            log.warning("cannot read authorized keys %s: %s", os.fspath(path), exc)
            return cls((), os.fspath(path))
        return cls.parse(data.decode("utf-8", "replace"), os.fspath(path))

    def __iter__(self) -> Iterator[AuthorizedKey]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def _candidates(
        self, key: object, ca: bool, address: str | None, host: str | None, now: float | None
    ) -> Iterator[AuthorizedKey]:
        when = time.time() if now is None else now
        for entry in self._by_blob.get(_as_ssh_key(key).public_blob, ()):
            if entry.cert_authority != ca or entry.is_expired(when):
                continue
            if entry.allows_source(address, host):
                yield entry

    def find(
        self,
        key: object,
        *,
        source_address: str | None = None,
        now: float | None = None,
        source_host: str | None = None,
    ) -> AuthorizedKey | None:
        """The first plain-key entry for ``key`` that ``from=``/``expiry-time`` allow.

        ``key`` is an ``SSHKey`` or ``PKey``; ``now`` defaults to the clock.
        """
        return next(self._candidates(key, False, source_address, source_host, now), None)

    def find_ca(
        self,
        ca_key: object,
        *,
        source_address: str | None = None,
        now: float | None = None,
        source_host: str | None = None,
    ) -> AuthorizedKey | None:
        """The first ``cert-authority`` entry for ``ca_key`` that its options allow."""
        return next(self._candidates(ca_key, True, source_address, source_host, now), None)

    def authorize_certificate(
        self,
        cert: Certificate,
        *,
        username: str,
        now: float | None = None,
        source_address: str | None = None,
        source_host: str | None = None,
        **validate_options: Any,
    ) -> tuple[AuthorizedKey | None, str | None]:
        """sshd's check of a user certificate against ``cert-authority`` lines.

        Returns ``(entry, None)`` on success, else ``(None, reason)``. The
        principal must be one of the entry's ``principals=`` if given, else
        ``username``; the certificate must pass ``validate_user_certificate``
        and its ``force-command`` must agree with the entry's ``command``.
        The entry returned is ``entry.restricted_by(cert)``: its ``permit_*``
        flags and ``command`` already include the certificate's extensions
        and ``force-command``, so act on it as on a plain key's entry.
        """
        when = time.time() if now is None else now
        reason = f"no cert-authority entry for CA {cert.signature_key.fingerprint_sha256()}"
        for entry in self._candidates(cert.signature_key, True, source_address, source_host, when):
            principal = username
            if entry.principals is not None:
                matched = [p for p in entry.principals if p in cert.principals]
                if not matched:
                    reason = "certificate does not contain an authorized principal"
                    continue
                principal = matched[0]
            result = validate_user_certificate(
                cert,
                principal=principal,
                now=int(when),
                trusted_ca=entry.key.__eq__,
                source_address=source_address,
                **validate_options,
            )
            forced = (entry.command, cert.force_command)
            if result is None and all(forced) and forced[0] != forced[1]:
                result = "forced command options do not match"
            if result is None:
                return entry.restricted_by(cert), None
            reason = result
        return None, reason
