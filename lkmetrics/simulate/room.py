"""The room ``simulate --agent`` gives the user's entrypoint: connected, with the simulated
caller as its one remote participant and a local participant that takes what agents do to
it (RPC methods, attributes, data) and keeps it in memory. No server is involved; the
caller's audio reaches the session through :mod:`lkmetrics.simulate.caller`, not the room.

It lets the usual entrypoint lines run as written: ``await ctx.connect()``,
``await ctx.wait_for_participant()``, ``ctx.room.local_participant.register_rpc_method(...)``,
``ctx.room.name``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from livekit import rtc

ROOM_NAME = "lkmetrics-simulate"
CALLER = "lkmetrics-caller"


class SimulatedParticipant:
    """A participant with the fields agents read (identity, kind, state, attributes)."""

    def __init__(self, identity: str, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
                 ) -> None:
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.kind = kind
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.metadata = ""
        self.attributes: dict[str, str] = {}
        self.track_publications: dict[str, Any] = {}
        self.disconnect_reason = None


class SimulatedLocalParticipant(SimulatedParticipant):
    """The agent's side: what it registers or publishes is kept, nothing is sent."""

    def __init__(self) -> None:
        super().__init__("lkmetrics-agent", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
        self.rpc_methods: dict[str, Callable[..., Any]] = {}
        self.data: list[tuple[bytes, str | None]] = []

    def register_rpc_method(self, method: str, handler: Callable[..., Any] | None = None
                            ) -> Any:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.rpc_methods[method] = fn
            return fn

        return register(handler) if handler is not None else register

    def unregister_rpc_method(self, method: str) -> None:
        self.rpc_methods.pop(method, None)

    async def publish_data(self, payload: bytes | str, *, topic: str | None = None,
                           **_: Any) -> None:
        self.data.append((payload.encode() if isinstance(payload, str) else payload, topic))

    async def set_attributes(self, attributes: Mapping[str, str]) -> None:
        self.attributes.update(attributes)

    async def set_metadata(self, metadata: str) -> None:
        self.metadata = metadata

    async def set_name(self, name: str) -> None:
        self.name = name

    async def unpublish_track(self, sid: str) -> None:
        self.track_publications.pop(sid, None)


class SimulatedRoom(rtc.Room):
    """Connected from the start, the caller already in it."""

    def __init__(self) -> None:
        super().__init__()
        self._simulated_local = SimulatedLocalParticipant()
        self._simulated_remote = {CALLER: SimulatedParticipant(CALLER)}

    @property
    def name(self) -> str:
        return ROOM_NAME

    @property
    def local_participant(self) -> Any:
        return self._simulated_local

    @property
    def remote_participants(self) -> Any:
        return self._simulated_remote

    @property
    def connection_state(self) -> Any:
        return rtc.ConnectionState.CONN_CONNECTED

    def isconnected(self) -> bool:
        return True

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def disconnect(self, *, reason: Any = None) -> None:
        return None
