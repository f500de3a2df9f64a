"""Timeouts, connection caps and watch settings of one backend's client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The four deadlines of every HTTP exchange with a backend, in seconds.

    `connect_s` bounds opening a TCP connection, `read_s` the silence between
    two reads of an answer, `write_s` the silence while sending a request body
    (an upload), and `pool_s` the wait for a free connection of the pool. A pool
    wait that runs out means the backend is saturated, not slow.
    """

    connect_s: float = 5.0
    read_s: float = 30.0
    write_s: float = 30.0
    pool_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection caps of the pool shared by HTTP requests and the WebSocket."""

    # The WebSocket holds one connection for as long as it is open.
    max_connections: int = 8
    keepalive_expiry_s: float = 15.0

    def __post_init__(self) -> None:
        if self.max_connections < 2:
            raise ValueError("max_connections must leave room beside the WebSocket")


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """How the WebSocket is kept open.

    After a loss the socket waits about `reconnect_min_s` (with jitter) before
    trying again, doubling the wait after each failed or short-lived attempt up
    to `reconnect_max_s`; a ping every `heartbeat_s` finds a peer that
    vanished without closing.
    """

    heartbeat_s: float = 20.0
    max_message_bytes: int = 64 * 1024 * 1024
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 10.0


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """When a watch stops trusting the socket and asks the backend directly.

    After `silence_s` without a message for its prompt, a watch reads the
    history and the queue. If the backend cannot be reached for longer than
    `unreachable_s`, the watch gives up with `BackendUnavailable`.
    """

    silence_s: float = 10.0
    unreachable_s: float = 20.0
