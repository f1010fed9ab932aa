#!/usr/bin/env python
"""paramiko's classic demos/demo_server.py, ported to geossh by changing the import.

The application code below is paramiko's: a ``ServerInterface`` with a
``threading.Event``, ``Transport.start_server``, ``accept(20)``, and a
shell session read with ``chan.makefile("rU").readline()``. What changed:

* ``import geossh as paramiko`` (after ``monkey.patch_all()``, so the
  demo's ``threading``/``socket`` code runs on greenlets);
* ``paramiko.py3compat`` is gone (it was removed in paramiko 3.0);
* no GSSAPI (geossh has none); a host key and an authorized key come from
  the command line; and every connection gets its own thread (a greenlet),
  so the server keeps serving after the first client.

Try it::

    python examples/demo_server.py --port 2200
    ssh -p 2200 robey@127.0.0.1          # password: foo

It prints ``Listening on HOST:PORT`` once ready (``--port 0`` picks a free one).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from binascii import hexlify  # noqa: E402

import geossh as paramiko  # noqa: E402


class Server(paramiko.ServerInterface):
    good_pub_key = None  # set from --authorized-key

    def __init__(self):
        self.event = threading.Event()

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_auth_password(self, username, password):
        if (username == "robey") and (password == "foo"):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        print("Auth attempt with key: " + hexlify(key.get_fingerprint()).decode())
        if (username == "robey") and (key == self.good_pub_key):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_channel_shell_request(self, channel):
        self.event.set()
        return True

    def check_channel_pty_request(
        self, channel, term, width, height, pixelwidth, pixelheight, modes
    ):
        return True


def handle(client, host_key):
    """One connection: paramiko's demo body, unchanged but for the exits."""
    try:
        t = paramiko.Transport(client)
        t.load_server_moduli()  # False (GEX unavailable) without /etc/ssh/moduli
        t.add_server_key(host_key)
        server = Server()
        try:
            t.start_server(server=server)
        except paramiko.SSHException:
            print("*** SSH negotiation failed.")
            return

        # wait for auth
        chan = t.accept(20)
        if chan is None:
            print("*** No channel.")
            t.close()
            return
        print("Authenticated!")

        server.event.wait(10)
        if not server.event.is_set():
            print("*** Client never asked for a shell.")
            t.close()
            return

        chan.send("\r\n\r\nWelcome to my dorky little BBS!\r\n\r\n")
        chan.send("We are on fire all the time!  Hooray!  Candy corn for everyone!\r\n")
        chan.send("Happy birthday to Robot Dave!\r\n\r\n")
        chan.send("Username: ")
        f = chan.makefile("rU")
        username = f.readline().strip("\r\n")
        chan.send("\r\nI don't like you, " + username + ".\r\n")
        chan.close()

    except Exception as e:
        print("*** Caught exception: " + str(e.__class__) + ": " + str(e))
        traceback.print_exc()
        with contextlib.suppress(Exception):
            t.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2200)
    parser.add_argument("--host-key", help="private host key file (default: a new Ed25519 key)")
    parser.add_argument("--authorized-key", help="public key (.pub) robey may log in with")
    args = parser.parse_args()

    if args.host_key:
        host_key = paramiko.PKey.from_path(args.host_key)
    else:
        host_key = paramiko.Ed25519Key.generate()
    print("Read key: " + hexlify(host_key.get_fingerprint()).decode())
    if args.authorized_key:
        blob = paramiko.PublicBlob.from_file(args.authorized_key)
        Server.good_pub_key = paramiko.PKey.from_type_string(blob.key_type, blob.key_blob)

    # now connect
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(100)
    except Exception as e:
        print("*** Bind failed: " + str(e))
        traceback.print_exc()
        sys.exit(1)

    print("Listening on {}:{}".format(*sock.getsockname()), flush=True)
    while True:
        client, _ = sock.accept()
        print("Got a connection!", flush=True)
        threading.Thread(target=handle, args=(client, host_key), daemon=True).start()


if __name__ == "__main__":
    main()
