"""``geossh serve``: a usable SSH server for the current user, from the command line.

With no arguments it listens on 127.0.0.1:2222, keeps generated host keys
in ``~/.local/state/geossh``, accepts the keys in ``~/.ssh/authorized_keys``
(and a password if one is given through ``--password-env`` or
``--password-prompt``), runs real shells with a pty and exec commands,
serves SFTP and scp rooted at the home directory, and prints how to
connect. With ``--no-shell --no-exec`` the SFTP root is the only boundary,
so a root holding the host keys, an authorized_keys file or ``~/.ssh`` is
refused (with a shell it is only warned about: the shell reaches them).
``--port 0`` picks a free port (the "serving on" line shows it).

Errors in flags, keys or addresses print one ``geossh: error: ...`` line on
stderr and exit with status 2. argparse only; the work is in
``geossh.runner`` and friends.
"""

from __future__ import annotations

import argparse
import getpass
import hmac
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from geossh._version import __version__
from geossh.proto.config import ServerConfig

EXIT_USAGE = 2
DEFAULT_PORT = 2222


class UsageError(Exception):
    """A bad flag or unusable input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _address(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``host`` or ``:port``."""
    host, port = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise argparse.ArgumentTypeError(f"bad address {text!r}")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise argparse.ArgumentTypeError(f"bad address {text!r}")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    return (host or "127.0.0.1", _port(port) if port else DEFAULT_PORT)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} out of range 0-65535")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _seconds_or_off(text: str) -> float:
    """Seconds, where 0 turns the timer off."""
    return 0.0 if text.strip() in ("0", "0.0", "none", "off") else _seconds(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``geossh`` argument parser (``serve`` is the only command)."""
    parser = _Parser(prog="geossh", description="geossh: an SSH server toolkit on gevent")
    parser.add_argument("--version", action="version", version=f"geossh {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    serve = commands.add_parser("serve", help="run an SSH server for the current user")
    _listening_flags(serve.add_argument_group("listening"))
    _auth_flags(serve.add_argument_group("host keys and authentication"))
    _service_flags(serve.add_argument_group("services and processes"))
    _limit_flags(serve.add_argument_group("limits (docs/limits.md)"))
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=levels)
    serve.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="json: every log line (the geossh.audit lines too) is one JSON object",
    )  # fmt: skip
    serve.add_argument(
        "--metrics", metavar="HOST:PORT", type=_address,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs geossh[metrics])",
    )  # fmt: skip
    return parser


def _listening_flags(group: Any) -> None:
    group.add_argument(
        "--listen",
        "-l",
        action="append",
        type=_address,
        metavar="ADDR",
        help="host:port or [v6addr]:port to listen on (repeatable)",
    )
    group.add_argument("--host", "-H", default="127.0.0.1", help="address (default 127.0.0.1)")
    group.add_argument(
        "--port",
        "-p",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    group.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="expect a PROXY v1/v2 header (behind HAProxy) from the trusted balancers",
    )
    group.add_argument(
        "--proxy-from",
        metavar="CIDR,...",
        type=_networks,
        help="balancers whose PROXY headers are believed (implies --proxy-protocol; "
        "default with --proxy-protocol: 127.0.0.0/8,::1)",
    )


def _networks(value: str) -> tuple[Any, ...]:
    from geossh.runner.server import parse_networks

    try:
        return parse_networks(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _auth_flags(group: Any) -> None:
    group.add_argument(
        "--host-key",
        action="append",
        metavar="FILE",
        help="private host key file (repeatable; default: generated and kept)",
    )
    group.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where generated host keys are kept (default ~/.local/state/geossh)",
    )
    group.add_argument("--user", default=None, help="the user name to accept (default: yours)")
    group.add_argument(
        "--authorized-keys",
        action="append",
        metavar="FILE",
        help="authorized_keys file (repeatable; default ~/.ssh/authorized_keys)",
    )
    group.add_argument(
        "--password-env",
        metavar="VAR",
        help="also accept the password found in environment variable VAR",
    )
    group.add_argument(
        "--password-prompt", action="store_true", help="also accept a password typed at start-up"
    )
    group.add_argument(
        "--no-password",
        action="store_true",
        help="never generate a one-time password when no usable key is found",
    )


def _service_flags(group: Any) -> None:
    group.add_argument(
        "--root",
        metavar="DIR",
        help="SFTP/scp root directory (default: home; with --no-shell --no-exec it must "
        "not hold the host keys, authorized_keys or ~/.ssh)",
    )
    group.add_argument("--no-sftp", action="store_true", help="no SFTP or scp")
    group.add_argument("--no-shell", action="store_true", help="no interactive shells")
    group.add_argument("--no-exec", action="store_true", help="no remote commands")
    group.add_argument("--forwarding", action="store_true", help="allow -L/-R/-D forwarding")
    group.add_argument(
        "--x11", action="store_true", help="allow ssh -X/-Y: a display per session (needs xauth)"
    )
    group.add_argument("--workers", type=_positive, default=1, help="worker processes")
    group.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long sessions may run on (default 10)",
    )
    group.add_argument(
        "--drain-limit",
        type=_seconds,
        metavar="SECONDS",
        help="after a reload (SIGHUP) or SIGUSR1, how long the old sessions may run on "
        "(default: until they end)",
    )


def _limit_flags(group: Any) -> None:
    add = group.add_argument
    # fmt: off
    add("--max-connections", type=_positive, metavar="N",
        help="open connections, all workers together; past it refused (default: no cap)")
    add("--max-startups", default="10:30:100", metavar="START:RATE:FULL",
        help="unauthenticated connections: random early drop (default 10:30:100)")
    add("--per-source-max-startups", type=_positive, metavar="N",
        help="unauthenticated connections from one source block (default: no cap)")
    add("--per-source-netblock-size", default="32:128", metavar="V4[:V6]",
        help="address bits that make one source block (default 32:128)")
    add("--per-source-penalties", default="yes", metavar="SPEC",
        help="'yes', 'no' or sshd keywords, e.g. 'authfail:30s noauth:1s min:15s max:10m'")
    add("--login-grace-time", type=_seconds, default=ServerConfig.auth_timeout,
        metavar="SECONDS",
        help="deadline for version exchange, key exchange and authentication (default %(default)g)")
    add("--max-auth-tries", type=_positive, default=ServerConfig.max_auth_tries, metavar="N",
        help="failed authentication attempts per connection (default %(default)d)")
    add("--max-channels", type=_positive, default=ServerConfig.max_channels, metavar="N",
        help="open channels per connection (default %(default)d)")
    add("--client-alive-interval", type=_seconds_or_off,
        default=ServerConfig.client_alive_interval, metavar="SECONDS",
        help="keepalive after this long without input (default 0: off)")
    add("--client-alive-count-max", type=_positive,
        default=ServerConfig.client_alive_count_max, metavar="N",
        help="unanswered keepalives before disconnecting (default %(default)d)")
    add("--unused-connection-timeout", type=_seconds_or_off,
        default=ServerConfig.unused_connection_timeout, metavar="SECONDS",
        help="close connections without an open channel after this long (default 0: off)")
    add("--nist-curves", action="store_true",
        help="also offer the NIST P-curve key exchanges and ECDSA host keys")
    # fmt: on


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geossh`` console script and ``python -m geossh``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in (
        "-h", "--help", "--version",
    )):  # fmt: skip
        args_list.insert(0, "serve")
    try:
        args = build_parser().parse_args(args_list)
        if args.command != "serve":
            raise UsageError("unknown command (try 'geossh serve')")
        return serve(args)
    except UsageError as exc:
        print(f"geossh: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def serve(args: argparse.Namespace) -> int:
    """Build the server from parsed flags, print how to connect, serve until stopped."""
    from geossh.runner.hostkeys import HostKeyError
    from geossh.runner.logformat import configure
    from geossh.runner.server import ListenError

    configure(args.log_level, args.log_format)
    metrics = _metrics() if args.metrics else None
    try:
        server, info = _build(args, [metrics] if metrics is not None else [])
        server.bind()
        if metrics is not None:
            info["metrics"] = _serve_metrics(args.metrics, metrics)
    except (HostKeyError, ListenError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if info["exposed"]:
        logging.getLogger("geossh.serve").warning("%s", info["exposed"])
    _announce(server, info)
    from geossh.runner.workers import StartError

    gave_up = False
    try:
        server.serve_forever()
    except StartError as exc:  # a new generation's worker failed: the old one serves on
        gave_up = True
        print(f"geossh: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if metrics is not None and not server._handed_over and not gave_up:  # else still used
            from geossh.runner.metrics import remove_multiprocess

            remove_multiprocess()
    return 0


def _metrics() -> Any:
    """The Prometheus observer, in multiprocess mode (workers and reloads add up)."""
    try:
        from geossh.runner.metrics import prepare_multiprocess

        prepare_multiprocess()
        from geossh.runner.metrics import Metrics

        return Metrics()
    except ImportError:
        raise UsageError(
            "--metrics needs prometheus_client: pip install 'geossh[metrics]'"
        ) from None


def _serve_metrics(address: tuple[str, int], metrics: Any) -> str:
    """Start the scrape endpoint; its URL. A generation started by SIGHUP counts a reload."""
    from geossh.runner.metrics import serve
    from geossh.runner.server import _show

    try:
        httpd, _ = serve(address)
    except OSError as exc:
        raise UsageError(f"--metrics {_show(address)}: {exc.strerror or exc}") from None
    if os.environ.get("GEOSSH_HANDOVER_SOCKET"):
        metrics.reloads.inc()
    return f"http://{_show(httpd.server_address)}/metrics"


def _build(args: argparse.Namespace, observers: Sequence[Any] = ()) -> tuple[Any, dict[str, Any]]:
    from geossh.runner import hostkeys
    from geossh.runner.audit import AuditLog
    from geossh.runner.serveapp import ServeApp
    from geossh.runner.server import Server, parse_max_startups
    from geossh.runner.srclimit import parse_netblock, parse_penalties

    # Report bad values before any key work.
    parse_max_startups(args.max_startups)
    parse_netblock(args.per_source_netblock_size)
    parse_penalties(args.per_source_penalties)
    user = args.user or getpass.getuser()
    home = os.path.expanduser("~")
    root = os.path.abspath(os.path.expanduser(args.root or home))
    if not args.no_sftp and not os.path.isdir(root):
        raise UsageError(f"--root {root}: not a directory")
    state_dir = args.state_dir or hostkeys.default_state_dir()
    key_files = [Path(p).expanduser() for p in args.authorized_keys or []]
    for path in key_files:
        if not os.access(path, os.R_OK):
            raise UsageError(f"authorized keys file {path} is not readable")
    if not args.authorized_keys:
        key_files = [Path(home) / ".ssh" / "authorized_keys"]
    exposed = None
    if not args.no_sftp:
        secret = [*(args.host_key or [state_dir]), *key_files, Path(home) / ".ssh"]
        exposed = _check_root(root, secret, confining=args.no_shell and args.no_exec)
    if args.host_key:
        keys = [hostkeys.load_host_key(path) for path in args.host_key]
    else:
        keys = hostkeys.load_or_create(state_dir)
    password = _password(args)
    one_time = False
    if password is None and not args.no_password and not _any_usable_key(key_files):
        # Nothing else would let anyone in: make the server usable at once.
        password, one_time = secrets.token_urlsafe(12), True
    app = ServeApp(
        user=user, authorized_keys=key_files, password=password, root=root,
        sftp=not args.no_sftp, shell=not args.no_shell, exec_=not args.no_exec,
        forwarding=args.forwarding, x11=args.x11,
    )  # fmt: skip
    listen = args.listen or [(args.host, args.port)]
    server = Server(
        listen, app.interface, host_keys=keys, exec_handler=app.exec_handler,
        shell_handler=app.shell_handler, subsystems=app.subsystems,
        max_connections=args.max_connections, max_startups=args.max_startups,
        login_grace_time=args.login_grace_time, proxy_protocol=args.proxy_protocol,
        proxy_from=args.proxy_from,
        workers=args.workers, stop_timeout=args.stop_timeout,
        drain_limit=args.drain_limit, observers=[AuditLog(), *observers], **_limits(args),
    )  # fmt: skip
    off = server.disabled_algorithms.get("keys", ())
    keys = [key for key in keys if key.get_name() not in off]  # the ones offered
    info = {"user": user, "keys": keys, "app": app, "root": root, "password": password}
    info["one_time_password"] = one_time
    info["exposed"] = exposed
    return server, info


def _check_root(root: str, secret: Sequence[Any], confining: bool) -> str | None:
    """Refuse (file access only) a root holding keys or ~/.ssh; else the warning to log."""
    from geossh.runner.serveapp import exposed_paths

    exposed = exposed_paths(root, secret)
    if not exposed:
        return None
    text = f"the SFTP/scp root {root} contains {', '.join(exposed)}"
    if confining:  # the root is the only boundary: host keys and logins must stay out
        raise UsageError(f"{text}; pass --root DIR (a directory without them)")
    return (
        f"{text}: whoever logs in can read them (the shell could anyway); to serve files"
        " only, use --no-shell --no-exec and a --root without them"
    )


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The Server keyword arguments of the limit flags."""
    return {
        "max_auth_tries": args.max_auth_tries,
        "max_channels": args.max_channels,
        "per_source_max_startups": args.per_source_max_startups,
        "per_source_netblock": args.per_source_netblock_size,
        "per_source_penalties": args.per_source_penalties,
        "disabled_algorithms": {} if args.nist_curves else None,
        "limits": {
            "client_alive_interval": args.client_alive_interval,
            "client_alive_count_max": args.client_alive_count_max,
            "unused_connection_timeout": args.unused_connection_timeout,
        },
    }


def _any_usable_key(paths: Sequence[Path]) -> bool:
    from geossh.services.authorized_keys import AuthorizedKeys

    return any(os.access(path, os.R_OK) and len(AuthorizedKeys.load(path)) for path in paths)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise UsageError(f"--password-env: environment variable {args.password_env} is empty")
        return value
    if args.password_prompt:
        if not sys.stdin.isatty():
            raise UsageError("--password-prompt needs a terminal")
        first = getpass.getpass("Password for SSH logins: ")
        if not first or not hmac.compare_digest(first, getpass.getpass("Again: ")):
            raise UsageError("passwords empty or different")
        return first
    return None


def _announce(server: Any, info: dict[str, Any]) -> None:
    from geossh.runner.hostkeys import fingerprints
    from geossh.runner.server import _show

    app = info["app"]
    addresses = [_show(address) for address in server.addresses]
    out = [f"geossh {__version__} serving on {', '.join(addresses)} for user {info['user']!r}"]
    out += [f"  host key {line}" for line in fingerprints(info["keys"])]
    out.append(f"  auth: {app.describe_auth()}")
    if info.get("one_time_password"):
        out.append(f"  password (generated for this run; no usable key found): {info['password']}")
    out.append(f"  services: {app.describe_services()}")
    host, port = server.addresses[0][0], server.addresses[0][1]
    target = f"[{host}]" if ":" in str(host) else str(host)
    out.append(f"  connect: ssh -p {port} {info['user']}@{target}")
    if app.sftp:
        out.append(f"           sftp -P {port} {info['user']}@{target}")
    if info.get("metrics"):
        out.append(f"  metrics on {info['metrics']}")
    print("\n".join(out), flush=True)
