"""How the connection greenlet waits for input: packet marks and bulk coalescing.

A partly received packet makes the socket readable only once the rest is
there (SO_RCVLOWAT); after a bulk read the reader waits briefly for more.
Neither may ever hold back a small message: each test ends with a reply the
server can only send after reading one.
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest

from geossh.proto.constants import MSG
from tests.integration.test_transport_hostile import BOUND, RawClient
from tests.support import ServerHarness
from tests.unit.kexclient import global_request, ignore


@pytest.fixture
def client(server: ServerHarness) -> Iterator[RawClient]:
    """An authenticated raw client; the test must finish within ``BOUND``."""
    server.start()
    raw = RawClient(server.port)
    with gevent.Timeout(BOUND, AssertionError("the server did not answer in time")):
        raw.handshake()
        raw.authenticate()
        yield raw
    raw.close()


def server_pump(server: ServerHarness) -> object:
    return server.transports[0]._pump


def wait_until_read(server: ServerHarness, count: int) -> None:
    """Let the server's greenlet run until it has read ``count`` bytes."""
    pump = server_pump(server)
    while pump.bytes_in < count:  # type: ignore[attr-defined]
        gevent.sleep(0.001)


def test_a_packet_waited_for_in_halves_is_answered(
    server: ServerHarness, client: RawClient
) -> None:
    wire = client.ssh.encode(global_request() + bytes(60_000))  # request-specific data
    half = len(wire) // 2
    client.send(wire[:half])
    wait_until_read(server, client.sent)
    # The server now waits for exactly the missing half of that packet.
    assert server_pump(server)._lowat == len(wire) - half  # type: ignore[attr-defined]
    client.send(wire[half:])
    client.wait_for(MSG.REQUEST_FAILURE)
    # Nothing is pending any more: the next small message is read at once.
    client.send_msg(global_request())
    client.wait_for(MSG.REQUEST_FAILURE)


def test_a_small_message_after_a_bulk_stream_is_answered(
    server: ServerHarness, client: RawClient
) -> None:
    def bulk(count: int) -> bytes:
        return b"".join(client.ssh.encode(ignore(bytes(32 * 1024))) for _ in range(count))

    client.send(bulk(64))  # 2 MiB in stream-sized reads
    client.send_msg(global_request())
    client.wait_for(MSG.REQUEST_FAILURE)
    # Bulk again, ending mid-packet, then the rest and a request.
    head = bulk(8)
    wire = client.ssh.encode(ignore(bytes(100_000)))
    client.send(head + wire[:1000])
    wait_until_read(server, client.sent)
    client.send(wire[1000:])
    client.send_msg(global_request())
    client.wait_for(MSG.REQUEST_FAILURE)
