"""geossh.authorized_keys: OpenSSH authorized_keys parsing and matching."""

from __future__ import annotations

import base64
import calendar
import datetime
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from geossh._facade.ed25519key import Ed25519Key
from geossh.proto import keys
from geossh.services.authorized_keys import (
    AuthorizedKeys,
    LineError,
    match_host_and_ip,
    parse_expiry_time,
    parse_line,
    split_options,
)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")


def keygen(directory: Path, name: str, kind: str = "ed25519") -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@host", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ak")
    keygen(directory, "alice")
    keygen(directory, "bob", "ecdsa")
    keygen(directory, "ca")
    keygen(directory, "other_ca")
    return directory


def pub(d: Path, name: str) -> str:
    return (d / f"{name}.pub").read_text().strip()


def bare(d: Path, name: str) -> str:
    return " ".join(pub(d, name).split()[:2])


def key(d: Path, name: str) -> keys.SSHKey:
    return keys.public_key_from_blob(base64.b64decode(pub(d, name).split()[1]))


def test_plain_lines_comments_and_blanks(d: Path) -> None:
    text = f"# a comment\n\n   \n{pub(d, 'alice')}\n  {pub(d, 'bob')}  \n"
    ak = AuthorizedKeys.parse(text)
    assert len(ak) == 2
    alice, bob = list(ak)
    assert alice.key == key(d, "alice") and alice.comment == "alice@host"
    assert (alice.line_number, bob.line_number) == (4, 5)
    assert alice.options == () and alice.permit_pty and alice.command is None
    assert ak.find(key(d, "alice")) is alice
    assert ak.find(key(d, "ca")) is None


def test_options_parsed(d: Path) -> None:
    line = (
        'command="echo \\"quoted, with spaces\\"",no-pty,no-port-forwarding,'
        'environment="LANG=C",environment="LANG=fr",environment="TZ=UTC",'
        'permitopen="db:5432",permitopen="[::1]:*",permitlisten="8080",'
        'permitlisten="localhost:9000",no-agent-forwarding,NO-X11-FORWARDING,no-user-rc,'
        f'tunnel="any" {bare(d, "alice")} trailing comment words'
    )
    entry = parse_line(line, 7)
    assert entry is not None
    assert entry.command == 'echo "quoted, with spaces"'
    assert entry.environment == (("LANG", "C"), ("TZ", "UTC"))  # first one wins
    assert entry.permitopen == (("db", 5432), ("::1", None))
    assert entry.permitlisten == (("*", 8080), ("localhost", 9000))
    assert not any(
        [
            entry.permit_pty,
            entry.permit_port_forwarding,
            entry.permit_agent_forwarding,
            entry.permit_x11_forwarding,
            entry.permit_user_rc,
        ]
    )
    assert entry.tunnel == "any"
    assert entry.comment == "trailing comment words"
    assert entry.options[0] == ("command", 'echo "quoted, with spaces"')
    assert ("no-x11-forwarding", None) in entry.options  # names are case-insensitive


def test_restrict_and_reenable_in_order(d: Path) -> None:
    entry = parse_line(f"restrict,pty,port-forwarding {pub(d, 'alice')}")
    assert entry is not None and entry.restrict
    assert entry.permit_pty and entry.permit_port_forwarding
    assert not entry.permit_agent_forwarding and not entry.permit_x11_forwarding
    assert not entry.permit_user_rc
    later = parse_line(f"pty,restrict {pub(d, 'alice')}")
    assert later is not None and not later.permit_pty  # order matters, as in sshd


def test_forwarding_permissions(d: Path) -> None:
    entry = parse_line(
        f'permitopen="db:5432",permitopen="*:80",permitlisten="2222" {pub(d, "alice")}'
    )
    assert entry is not None
    assert entry.allows_open("db", 5432) and not entry.allows_open("db", 5433)
    assert entry.allows_open("anything", 80)
    assert entry.allows_listen("0.0.0.0", 2222) and not entry.allows_listen("0.0.0.0", 2223)
    free = parse_line(pub(d, "alice"))
    assert free is not None and free.allows_open("x", 1) and free.allows_listen("x", 1)
    blocked = parse_line(f'no-port-forwarding,permitopen="db:1" {pub(d, "alice")}')
    assert blocked is not None and not blocked.allows_open("db", 1)


def test_split_options_quoting() -> None:
    assert split_options('a,b="x,y",C="q\\"uote",d="back\\\\slash"') == [
        ("a", None),
        ("b", "x,y"),
        ("c", 'q"uote'),
        ("d", "back\\\\slash"),  # only \\" is an escape, as in OpenSSH
    ]
    for bad in ['a="unterminated', "a,", "a=unquoted", 'a="x"b', ",a", "a b"]:
        with pytest.raises(LineError):
            split_options(bad)


@pytest.mark.parametrize(
    "prefix",
    [
        "bogus-option",
        "command",  # needs a value
        'no-pty="x"',  # takes none
        'command="a",command="b"',
        'from="10.0.0.0/8",from="::1"',
        'principals="a"',  # principals without cert-authority
        'environment="=x"',
        'environment="BAD-NAME=x"',
        'environment="NOEQUALS"',
        'permitopen="nohostport"',
        'permitopen="host:0"',
        'permitopen="host:99999"',
        'permitopen="[::1]"',
        'expiry-time="2020"',
        'expiry-time="20201301"',
        'tunnel="x"',
        'from="10.0.0.1/8"',  # host bits set
        'from=""',
        'from="a,,b"',
        'command="unterminated',
    ],
)
def test_bad_lines_are_skipped_with_a_warning(
    d: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="geossh.auth"):
        ak = AuthorizedKeys.parse(f"{prefix} {pub(d, 'alice')}\n{pub(d, 'bob')}\n", "file")
    assert [e.key for e in ak] == [key(d, "bob")]
    assert any("file line 1 skipped" in r.getMessage() for r in caplog.records)


def test_bad_key_data_skipped(d: Path, caplog: pytest.LogCaptureFixture) -> None:
    alice = pub(d, "alice").split()
    blob = base64.b64decode(alice[1])
    lines = [
        "garbage",
        "ssh-ed25519",
        f"ssh-ed25519 {base64.b64encode(blob[:-1]).decode()}",  # truncated
        f"ssh-ed25519 {base64.b64encode(blob + b'x').decode()}",  # trailing bytes
        f"ssh-rsa {alice[1]}",  # stated type differs from the blob's
        "x" * 20000,
    ]
    with caplog.at_level(logging.WARNING, logger="geossh.auth"):
        ak = AuthorizedKeys.parse("\n".join(lines))
    assert len(ak) == 0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == len(lines)


def test_unsupported_key_types_skipped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    blob = b"\x00\x00\x00\x07ssh-dss" + b"\x00\x00\x00\x01\x01" * 4
    line = f"ssh-dss {base64.b64encode(blob).decode()} old"
    with caplog.at_level(logging.INFO, logger="geossh.auth"):
        assert len(AuthorizedKeys.parse(line)) == 0
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_load(d: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "authorized_keys"
    path.write_bytes(f"{pub(d, 'alice')}\nbad line \xff\n".encode("latin-1"))
    ak = AuthorizedKeys.load(path)
    assert len(ak) == 1 and ak.source == str(path)
    with caplog.at_level(logging.WARNING, logger="geossh.auth"):
        missing = AuthorizedKeys.load(tmp_path / "missing")
    assert len(missing) == 0
    assert "cannot read authorized keys" in caplog.text


# -- from= and expiry-time= --------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "address", "host", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", None, True),
        ("10.0.0.0/8", "11.1.2.3", None, False),
        ("10.0.0.0/8,!10.0.0.66", "10.0.0.66", None, False),
        ("!10.0.0.66,10.0.0.0/8", "10.0.0.66", None, False),
        ("10.*", "10.9.9.9", None, True),
        ("10.?.1.1", "10.5.1.1", None, True),
        ("2001:db8::/32", "2001:db8::1", None, True),
        ("2001:db8::/32", "2001:db9::1", None, False),
        ("192.0.2.0/24", "::ffff:192.0.2.9", None, True),
        ("*.example.com", "192.0.2.1", "Host.Example.COM", True),
        ("*.example.com,!bad.example.com", "192.0.2.1", "bad.example.com", False),
        ("*", "192.0.2.1", None, True),
        ("!192.0.2.1", "192.0.2.1", None, False),
        ("!192.0.2.1", "192.0.2.2", None, False),  # only negative patterns: no positive hit
        ("192.0.2.1/24", "192.0.2.1", None, False),  # malformed: denies
    ],
)
def test_match_host_and_ip(patterns: str, address: str, host: str | None, expected: bool) -> None:
    assert match_host_and_ip(host or address, address, patterns) is expected


def test_find_respects_from(d: Path) -> None:
    text = f'from="10.0.0.0/8,!10.0.0.66" {bare(d, "alice")} first\n{bare(d, "alice")} second\n'
    ak = AuthorizedKeys.parse(text)
    alice = key(d, "alice")
    first = ak.find(alice, source_address="10.1.1.1")
    assert first is not None and first.comment == "first"
    second = ak.find(alice, source_address="10.0.0.66")  # falls through to the next line
    assert second is not None and second.comment == "second"
    only = AuthorizedKeys.parse(f'from="10.0.0.0/8" {pub(d, "alice")}')
    assert only.find(alice, source_address="192.0.2.1") is None
    assert only.find(alice) is None  # a restricted entry needs an address
    named = AuthorizedKeys.parse(f'from="*.corp" {pub(d, "alice")}')
    assert named.find(alice, source_address="192.0.2.1", source_host="pc.corp") is not None


def test_find_accepts_pkey(d: Path) -> None:
    ak = AuthorizedKeys.parse(pub(d, "alice"))
    pkey = Ed25519Key(data=key(d, "alice").public_blob)
    assert ak.find(pkey) is not None
    with pytest.raises(TypeError):
        ak.find("not a key")


def test_expiry_time(d: Path) -> None:
    assert parse_expiry_time("20300102Z") == calendar.timegm((2030, 1, 2, 0, 0, 0))
    assert parse_expiry_time("203001020304UTC") == calendar.timegm((2030, 1, 2, 3, 4, 0))
    assert parse_expiry_time("20300102030405z") == calendar.timegm((2030, 1, 2, 3, 4, 5))
    local = datetime.datetime(2030, 1, 2, 3, 4).timestamp()
    assert parse_expiry_time("203001020304") == int(local)
    text = f'expiry-time="20300101Z",expiry-time="20250101Z" {pub(d, "alice")}'
    entry = parse_line(text)
    assert entry is not None and entry.expiry_time == calendar.timegm((2025, 1, 1, 0, 0, 0))
    ak = AuthorizedKeys.parse(text)
    alice = key(d, "alice")
    assert ak.find(alice, now=calendar.timegm((2024, 6, 1, 0, 0, 0))) is not None
    assert ak.find(alice, now=entry.expiry_time) is not None  # expires after that second
    assert ak.find(alice, now=entry.expiry_time + 1) is None
    assert ak.find(alice) is None  # default: the real clock, long past 2025
    future = AuthorizedKeys.parse(f'expiry-time="29990101" {pub(d, "alice")}')
    assert future.find(alice) is not None


# -- certificate authorities --------------------------------------------------------


def issue(d: Path, tmp_path: Path, *options: str, ca: str = "ca") -> keys.Certificate:
    shutil.copy(d / "bob.pub", tmp_path / "bob.pub")
    cmd = ["ssh-keygen", "-q", "-s", str(d / ca), "-I", "bob-cert", *options]
    subprocess.run([*cmd, str(tmp_path / "bob.pub")], check=True, capture_output=True)
    blob = base64.b64decode((tmp_path / "bob-cert.pub").read_text().split()[1])
    return keys.parse_certificate(blob)


def test_cert_authority_lines(d: Path, tmp_path: Path) -> None:
    text = f'cert-authority,principals="root,admin" {pub(d, "ca")}\n{pub(d, "alice")}\n'
    ak = AuthorizedKeys.parse(text)
    ca = key(d, "ca")
    entry = ak.find_ca(ca)
    assert entry is not None and entry.cert_authority and entry.principals == ("root", "admin")
    assert ak.find(ca) is None  # a CA line never authorises the CA key itself
    assert ak.find_ca(key(d, "alice")) is None

    now = int(time.time())
    good = issue(d, tmp_path, "-n", "admin,other")
    assert ak.authorize_certificate(good, username="bob", now=now) == (entry, None)
    wrong = issue(d, tmp_path, "-n", "bob")
    found, reason = ak.authorize_certificate(wrong, username="bob", now=now)
    assert found is None and reason == "certificate does not contain an authorized principal"
    foreign = issue(d, tmp_path, "-n", "admin", ca="other_ca")
    found, reason = ak.authorize_certificate(foreign, username="bob", now=now)
    assert found is None and reason is not None and reason.startswith("no cert-authority entry")


def test_cert_authority_without_principals_uses_username(d: Path, tmp_path: Path) -> None:
    ak = AuthorizedKeys.parse(f'cert-authority,from="192.0.2.0/24" {pub(d, "ca")}')
    cert = issue(d, tmp_path, "-n", "bob", "-V", "-1h:+1h")
    now = int(time.time())
    entry, reason = ak.authorize_certificate(
        cert, username="bob", now=now, source_address="192.0.2.5"
    )
    assert entry is not None and reason is None
    _, reason = ak.authorize_certificate(
        cert, username="carol", now=now, source_address="192.0.2.5"
    )
    assert reason == "principal 'carol' not in certificate"
    entry, _ = ak.authorize_certificate(
        cert, username="bob", now=now, source_address="198.51.100.1"
    )
    assert entry is None
    _, reason = ak.authorize_certificate(
        cert, username="bob", now=now + 7200, source_address="192.0.2.5"
    )
    assert reason == "certificate has expired"


def test_forced_commands_must_agree(d: Path, tmp_path: Path) -> None:
    now = int(time.time())
    cert = issue(d, tmp_path, "-n", "bob", "-O", "force-command=/bin/a")
    same = AuthorizedKeys.parse(f'cert-authority,command="/bin/a" {pub(d, "ca")}')
    assert same.authorize_certificate(cert, username="bob", now=now)[1] is None
    other = AuthorizedKeys.parse(f'cert-authority,command="/bin/b" {pub(d, "ca")}')
    assert other.authorize_certificate(cert, username="bob", now=now)[1] == (
        "forced command options do not match"
    )
    host = issue(d, tmp_path, "-n", "bob", "-h")
    assert same.authorize_certificate(host, username="bob", now=now)[1] == "not a user certificate"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_never_raises(d: Path, data: st.DataObject) -> None:
    line = list(f'restrict,command="x \\"y\\"",from="10.0.0.0/8" {pub(d, "alice")}')
    for _ in range(data.draw(st.integers(0, 4))):
        pos = data.draw(st.integers(0, len(line) - 1))
        line[pos] = data.draw(st.sampled_from('",=\\ !#*x\t\x00é\n'))
    extra = data.draw(st.text(max_size=80))
    ak = AuthorizedKeys.parse("".join(line) + "\n" + extra)
    for entry in ak:
        assert isinstance(entry.key, keys.SSHKey)
        entry.allows_source("10.1.1.1")


# -- sshd's field and line rules (ASCII only) -----------------------------------------


@pytest.mark.parametrize("separator", ["\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\x85", "\u2028"])
def test_only_newline_ends_a_line(d: Path, separator: str) -> None:
    """str.splitlines() would split here and turn a comment into an unrestricted key."""
    text = f'command="/bin/restricted" {bare(d, "alice")} comment{separator}{bare(d, "bob")}\n'
    parsed = AuthorizedKeys.parse(text)
    assert [entry.key for entry in parsed] == [key(d, "alice")]
    assert parsed.entries[0].command == "/bin/restricted"
    assert parsed.find(key(d, "bob"), now=0) is None


def test_fields_are_separated_by_space_and_tab_only(d: Path) -> None:
    kind, blob = bare(d, "alice").split()
    assert len(AuthorizedKeys.parse(f"{kind}\u00a0{blob}\n{kind}\u2003{blob}")) == 0
    parsed = AuthorizedKeys.parse(f" \t{kind}\t{blob}\tmy  key \r\n")
    assert [(e.key, e.comment) for e in parsed] == [(key(d, "alice"), "my  key")]


@pytest.mark.parametrize(
    "options",
    ['permitopen="host:\u00b2"', 'permitlisten="\u00b2"', 'permitopen="h:\uff12\uff12"',
     'expiry-time="\uff12\uff10\uff12\uff10\uff10\uff11\uff10\uff11"', 'tunnel="\u00b2"'],
)  # fmt: skip
def test_non_ascii_digits_are_rejected_not_raised(
    d: Path, options: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="geossh.auth"):
        assert len(AuthorizedKeys.parse(f"{options} {bare(d, 'alice')}")) == 0
    assert "skipped" in caplog.text


@pytest.mark.parametrize(
    ("options", "line", "expected"),
    [
        ((), "", (True, True, True, True, True)),
        (("-O", "no-pty"), "", (False, True, True, True, True)),
        (("-O", "no-port-forwarding"), "", (True, False, True, True, True)),
        (
            ("-O", "no-agent-forwarding", "-O", "no-x11-forwarding"),
            "",
            (True, True, False, False, True),
        ),
        (("-O", "no-user-rc"), "", (True, True, True, True, False)),
        (("-O", "clear"), "", (False, False, False, False, False)),
        (("-O", "clear", "-O", "permit-pty"), "", (True, False, False, False, False)),
        ((), "no-pty,", (False, True, True, True, True)),  # the line restricts too
        (("-O", "no-pty"), "restrict,pty,", (False, False, False, False, False)),
    ],
)
def test_certificate_extensions_restrict_the_entry(
    d: Path, tmp_path: Path, options: tuple[str, ...], line: str, expected: tuple[bool, ...]
) -> None:
    """sshd's merge: a permission needs both the line and the certificate's extension."""
    ak = AuthorizedKeys.parse(f"{line}cert-authority {pub(d, 'ca')}")
    cert = issue(d, tmp_path, "-n", "bob", *options)
    entry, reason = ak.authorize_certificate(cert, username="bob", now=int(time.time()))
    assert reason is None and entry is not None
    got = (entry.permit_pty, entry.permit_port_forwarding, entry.permit_agent_forwarding,
           entry.permit_x11_forwarding, entry.permit_user_rc)  # fmt: skip
    assert got == expected
    assert entry.allows_open("h", 1) is expected[1] and entry.allows_listen("h", 1) is expected[1]


def test_certificate_force_command_becomes_the_entry_command(d: Path, tmp_path: Path) -> None:
    cert = issue(d, tmp_path, "-n", "bob", "-O", "force-command=/bin/a")
    plain = AuthorizedKeys.parse(f"cert-authority {pub(d, 'ca')}")
    entry, _ = plain.authorize_certificate(cert, username="bob", now=int(time.time()))
    assert entry is not None and entry.command == "/bin/a"
    free = issue(d, tmp_path, "-n", "bob")
    entry, _ = plain.authorize_certificate(free, username="bob", now=int(time.time()))
    assert entry is not None and entry.command is None
