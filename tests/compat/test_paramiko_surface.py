"""geossh's public surface matches paramiko's: names, constant values, signatures.

The contract is docs/compatibility.md (paramiko 5.1 baseline). Server-side names
must exist with paramiko's signatures; client-only names are out of scope.
"""

from __future__ import annotations

import importlib
import inspect

import paramiko
import pytest

import geossh

TOP_LEVEL = [
    "Transport", "SecurityOptions", "Channel", "ChannelFile", "ChannelStderrFile",
    "ChannelStdinFile", "Message", "BufferedFile", "ServerInterface", "SubsystemHandler",
    "InteractiveQuery", "PKey", "PublicBlob", "UnknownKeyType", "RSAKey", "ECDSAKey",
    "Ed25519Key", "key_classes", "SFTPServer", "SFTPServerInterface", "SFTPHandle",
    "SFTPAttributes", "SFTPError", "AUTH_SUCCESSFUL", "AUTH_PARTIALLY_SUCCESSFUL",
    "AUTH_FAILED", "OPEN_SUCCEEDED", "OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED",
    "OPEN_FAILED_CONNECT_FAILED", "OPEN_FAILED_UNKNOWN_CHANNEL_TYPE",
    "OPEN_FAILED_RESOURCE_SHORTAGE", "SFTP_OK", "SFTP_EOF", "SFTP_NO_SUCH_FILE",
    "SFTP_PERMISSION_DENIED", "SFTP_FAILURE", "SFTP_BAD_MESSAGE", "SFTP_NO_CONNECTION",
    "SFTP_CONNECTION_LOST", "SFTP_OP_UNSUPPORTED", "io_sleep", "SSHException",
    "AuthenticationException", "PasswordRequiredException", "BadAuthenticationType",
    "ChannelException", "BadHostKeyException", "ProxyCommandFailure", "IncompatiblePeer",
    "MessageOrderError", "ConfigParseError", "CouldNotCanonicalize",
]  # fmt: skip

SUBMODULES = [
    "common", "util", "server", "transport", "channel", "message", "pkey", "rsakey",
    "ecdsakey", "ed25519key", "sftp", "sftp_server", "sftp_si", "sftp_handle",
    "sftp_attr", "ssh_exception", "buffered_pipe", "file", "agent",
]  # fmt: skip

# (class, methods) whose signatures must equal paramiko's.
SIGNATURES = {
    "ServerInterface": [
        "check_channel_request",
        "get_allowed_auths",
        "check_auth_none",
        "check_auth_password",
        "check_auth_publickey",
        "check_auth_interactive",
        "check_auth_interactive_response",
        "check_port_forward_request",
        "cancel_port_forward_request",
        "check_global_request",
        "check_channel_pty_request",
        "check_channel_shell_request",
        "check_channel_exec_request",
        "check_channel_subsystem_request",
        "check_channel_window_change_request",
        "check_channel_x11_request",
        "check_channel_forward_agent_request",
        "check_channel_env_request",
        "check_channel_direct_tcpip_request",
        "get_banner",
    ],
    "Transport": [
        "__init__",
        "add_server_key",
        "get_server_key",
        "start_server",
        "accept",
        "is_active",
        "is_authenticated",
        "get_username",
        "getpeername",
        "open_channel",
        "open_forwarded_tcpip_channel",
        "open_x11_channel",
        "open_forward_agent_channel",
        "open_session",
        "global_request",
        "send_ignore",
        "set_keepalive",
        "renegotiate_keys",
        "close",
        "get_exception",
        "get_security_options",
        "use_compression",
        "set_log_channel",
        "get_log_channel",
        "set_hexdump",
        "get_hexdump",
        "set_subsystem_handler",
        "atfork",
        "get_banner",
    ],
    "Channel": [
        "__init__",
        "recv",
        "recv_stderr",
        "recv_ready",
        "recv_stderr_ready",
        "send",
        "send_stderr",
        "sendall",
        "sendall_stderr",
        "send_ready",
        "send_exit_status",
        "close",
        "shutdown",
        "shutdown_read",
        "shutdown_write",
        "settimeout",
        "gettimeout",
        "setblocking",
        "fileno",
        "makefile",
        "makefile_stderr",
        "makefile_stdin",
        "set_combine_stderr",
        "exit_status_ready",
        "recv_exit_status",
        "get_id",
        "get_name",
        "set_name",
        "get_transport",
        "getpeername",
    ],
    "InteractiveQuery": ["__init__", "add_prompt"],
    "SubsystemHandler": ["__init__", "get_server", "start_subsystem", "finish_subsystem"],
    "Message": [
        "__init__",
        "get_bytes",
        "get_byte",
        "get_boolean",
        "get_int",
        "get_int64",
        "get_adaptive_int",
        "get_mpint",
        "get_string",
        "get_text",
        "get_binary",
        "get_list",
        "add_bytes",
        "add_byte",
        "add_boolean",
        "add_int",
        "add_adaptive_int",
        "add_int64",
        "add_mpint",
        "add_string",
        "add_list",
        "add",
        "asbytes",
        "rewind",
        "get_remainder",
        "get_so_far",
    ],
    "SFTPServerInterface": [
        "__init__",
        "session_started",
        "session_ended",
        "open",
        "list_folder",
        "stat",
        "lstat",
        "remove",
        "rename",
        "posix_rename",
        "mkdir",
        "rmdir",
        "chattr",
        "canonicalize",
        "readlink",
        "symlink",
    ],
    "SFTPHandle": ["__init__", "close", "read", "write", "stat", "chattr"],
    "SFTPAttributes": ["__init__", "from_stat", "asbytes"],
    "RSAKey": [
        "__init__",
        "generate",
        "get_name",
        "get_bits",
        "can_sign",
        "sign_ssh_data",
        "verify_ssh_sig",
        "write_private_key_file",
        "write_private_key",
    ],
    "ECDSAKey": [
        "__init__",
        "generate",
        "get_name",
        "get_bits",
        "can_sign",
        "sign_ssh_data",
        "verify_ssh_sig",
    ],
    "Ed25519Key": [
        "__init__",
        "get_name",
        "get_bits",
        "can_sign",
        "sign_ssh_data",
        "verify_ssh_sig",
    ],
    "PKey": [
        "from_private_key_file",
        "from_private_key",
        "from_type_string",
        "get_base64",
        "get_fingerprint",
        "asbytes",
        "load_certificate",
    ],
    "PublicBlob": ["__init__", "from_file", "from_string", "from_message"],
}


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_name(name: str) -> None:
    assert hasattr(paramiko, name), f"paramiko has no {name} (contract out of date?)"
    assert hasattr(geossh, name), f"geossh lacks paramiko.{name}"


@pytest.mark.parametrize("module", SUBMODULES)
def test_submodule(module: str) -> None:
    importlib.import_module(f"geossh.{module}")


def _default(value: object) -> object:
    """Defaults compare by value; object defaults (e.g. a curve instance) by type."""
    if value is inspect.Parameter.empty or isinstance(value, (int, float, str, bytes, type(None))):
        return value
    return type(value).__name__


def _params(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, _default(p.default)) for p in sig.parameters.values()]


@pytest.mark.parametrize(
    ("cls", "method"), [(c, m) for c, methods in SIGNATURES.items() for m in methods]
)
def test_signature(cls: str, method: str) -> None:
    ours = getattr(getattr(geossh, cls), method)
    theirs = getattr(getattr(paramiko, cls), method)
    ours_params, theirs_params = _params(ours), _params(theirs)
    # geossh may add trailing keyword parameters with defaults; paramiko's must all match.
    assert ours_params[: len(theirs_params)] == theirs_params, (ours_params, theirs_params)
    for name, kind, default in ours_params[len(theirs_params) :]:
        assert default is not inspect.Parameter.empty or kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ), f"extra required parameter {name}"


def _public_constants(module: object) -> dict[str, object]:
    return {
        k: v for k, v in vars(module).items()
        if k.isupper() and isinstance(v, (int, str, bytes, dict, list, tuple))
    }  # fmt: skip


@pytest.mark.parametrize("module", ["common", "sftp"])
def test_constant_values(module: str) -> None:
    theirs = _public_constants(importlib.import_module(f"paramiko.{module}"))
    ours = vars(importlib.import_module(f"geossh.{module}"))
    missing = sorted(k for k in theirs if k not in ours)
    assert not missing, f"geossh.{module} lacks {missing}"
    wrong = sorted(k for k, v in theirs.items() if ours[k] != v)
    assert not wrong, f"geossh.{module} values differ: {wrong}"


def test_paramiko4_gssapi_callbacks_still_load() -> None:
    """paramiko 5 dropped GSSAPI; 4.x subclasses still override these, so keep them."""
    server = geossh.ServerInterface()
    assert server.enable_auth_gssapi() is False
    assert server.check_auth_gssapi_with_mic("u") == geossh.AUTH_FAILED
    assert server.check_auth_gssapi_keyex("u", geossh.AUTH_SUCCESSFUL) == geossh.AUTH_SUCCESSFUL


def test_exception_hierarchy() -> None:
    for name in ("AuthenticationException", "ChannelException", "BadHostKeyException",
                 "IncompatiblePeer", "MessageOrderError"):  # fmt: skip
        assert issubclass(getattr(geossh, name), geossh.SSHException)
    assert issubclass(geossh.PasswordRequiredException, geossh.AuthenticationException)
    assert issubclass(geossh.BadAuthenticationType, geossh.AuthenticationException)
    exc = geossh.ChannelException(2, "Connect failed")
    assert (exc.code, exc.text) == (2, "Connect failed")
    bad = geossh.BadAuthenticationType("Bad", ["publickey"])
    assert bad.allowed_types == ["publickey"]
