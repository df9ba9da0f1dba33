"""Measuring the user's agent: every AgentSession its code starts is captured, and the
components the command line names replace the agent's own.

:func:`activate` patches ``AgentSession.__init__``, ``AgentSession.start``,
``AgentSession.update_agent``, ``Agent.__init__`` and ``llm.LLM.__init__`` once per process
(the patches call LiveKit's own methods; without an active :class:`Hooks` they change
nothing). The user's event handlers, shutdown callbacks and ``on_session_end`` are untouched:
capture only adds its own listeners, as it does for the built-in agent.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from livekit.agents import Agent, AgentSession
from livekit.agents.llm import LLM
from livekit.agents.llm.tool_context import get_fnc_tool_names
from livekit.agents.types import NOT_GIVEN

from lkmetrics.agent.capture import Capture
from lkmetrics.agent.server import build_components, session_info
from lkmetrics.config.settings import AgentSettings
from lkmetrics.pipeline import Pipeline
from lkmetrics.safety import printable

STAGES = ("stt", "llm", "tts")
# the keys that the plugins' constructors insist on (deepgram.STT(), openai.LLM(), ...): the
# agent builds its models before lkmetrics replaces them, so with every model replaced each
# gets a placeholder unless set (never sent anywhere: the replaced models are not used)
PLACEHOLDER = "lkmetrics-replaced-model-key-never-sent"  # 32+ bytes: some sign JWTs with it
PROVIDER_KEYS = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OPENAI_API_KEY", "DEEPGRAM_API_KEY",
                 "CARTESIA_API_KEY", "GROQ_API_KEY", "ELEVEN_API_KEY", "ASSEMBLYAI_API_KEY",
                 "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "CEREBRAS_API_KEY", "RIME_API_KEY",
                 "SPEECHMATICS_API_KEY", "INWORLD_API_KEY", "AZURE_SPEECH_KEY",
                 "AZURE_SPEECH_REGION", "FIREWORKS_API_KEY", "TOGETHER_API_KEY",
                 "MISTRAL_API_KEY", "XAI_API_KEY", "HUME_API_KEY", "NEUPHONIC_API_KEY",
                 "SARVAM_API_KEY", "GLADIA_API_KEY", "SONIOX_API_KEY", "RESEMBLE_API_KEY",
                 "LMNT_API_KEY", "PLAYHT_API_KEY", "PLAYHT_USER_ID", "SPITCH_API_KEY")
FLAG = {"stt": "--stt", "llm": "--llm", "tts": "--tts"}


def describe(component: Any) -> str:
    """``provider/model`` of a component (or the string the agent gave), else its class."""
    if component is NOT_GIVEN or component is None:
        return "none"
    if isinstance(component, str):
        return component
    model = getattr(component, "model", None)
    provider = getattr(component, "provider", None)
    if isinstance(model, str) and model and model != "unknown":
        if "/" in model or not isinstance(provider, str) or provider in ("", "unknown"):
            return model
        return f"{provider}/{model}"
    return type(component).__name__


def _given(value: Any) -> bool:
    return value is not NOT_GIVEN and value is not None


class Hooks:
    """What this process does to the user's sessions: replace components, capture each one.

    ``io``: simulate's caller (it returns the session's audio input and output, used instead
    of a room); ``on_session``: told each started session and its capture, on the loop.
    """

    def __init__(self, settings: AgentSettings, userdata: dict[Any, Any],
                 pipeline: Callable[[], Pipeline], *, resolved: str | None = None,
                 io: Callable[[], tuple[Any, Any]] | None = None,
                 on_session: Callable[[Any, Capture], None] | None = None,
                 info: dict[str, Any] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.userdata = userdata
        self.pipeline = pipeline
        self.resolved = resolved
        self.io = io
        self.on_session = on_session
        self.info = dict(info or {})
        self.say = say or _stderr
        self.captures: dict[int, Capture] = {}
        self.sessions: list[Any] = []
        self.built_llms: list[Any] = []  # the LLMs the agent's code built (or their stand-in)
        self._stand_in: Any = None  # with --llm/--local: the LLM those calls go to
        self._said: set[str] = set()
        self._lock = threading.Lock()
        if set(settings.replace) == set(STAGES):
            # every model the agent builds is replaced, but LiveKit Inference's classes and
            # the plugins' (inference.STT(...), deepgram.STT() in the agent's code) refuse to
            # be built without a key
            for var in PROVIDER_KEYS:
                os.environ.setdefault(var, PLACEHOLDER)

    # -- messages --

    def note(self, line: str) -> None:
        """One stderr line, once per process."""
        with self._lock:
            if line in self._said:
                return
            self._said.add(line)
        self.say(printable(line))  # model names and URLs from the agent's code and the flags

    # -- overrides --

    def _replacements(self) -> dict[str, Any]:
        token = _building.set(True)  # lkmetrics' own models: not the agent's own LLMs
        try:
            built = build_components(self.settings, self.userdata)
        finally:
            _building.reset(token)
        return {s: getattr(built, s) for s in self.settings.replace}

    def llm_built(self, llm: Any) -> None:
        """An LLM the agent's code built (``groq.LLM(...)``). It may never reach a session or
        an Agent (a second, faster model for fillers, a router, a summariser), so it is
        measured wherever it is called: with --llm/--local its ``chat`` goes to the
        replacement (one stderr line at its first call), and whichever model answers is
        captured with the session's components."""
        target = llm
        if "llm" in self.settings.replace:
            with self._lock:  # one stand-in serves every such LLM of this run
                if self._stand_in is None:
                    self._stand_in = self._replacements()["llm"]
                target = self._stand_in
            original = llm.chat

            def chat(*args: Any, **kw: Any) -> Any:
                self.note(f"lkmetrics: an LLM the agent's code calls itself, {describe(llm)}, "
                          f"replaced by {self._by('llm')} ({self._flag('llm')})")
                return target.chat(*args, **kw)

            chat.__wrapped__ = original  # type: ignore[attr-defined]
            llm.chat = chat
        with self._lock:
            if target not in self.built_llms:
                self.built_llms.append(target)
        for capture in list(self.captures.values()):  # one built while a session runs
            capture.attach_more([target])

    def _by(self, stage: str) -> str:
        value = getattr(self.settings, stage)
        if stage == "tts" and value not in (None, "local"):
            value = f"{value} (voice {self.settings.voice})"
        if stage == "llm" and self.settings.llm_base_url and value != "local":
            value = f"{self.settings.llm_model or value} at {self.settings.llm_base_url}"
        return str(value)

    def session_kwargs(self, kw: dict[str, Any]) -> dict[str, Any]:
        kw = dict(kw)
        for stage, new in self._replacements().items():
            if not _given(kw.get(stage, NOT_GIVEN)):
                continue  # the session has none: its agents bring their own (replaced there)
            self.note(f"lkmetrics: the agent's {stage.upper()} {describe(kw[stage])}"
                      f" replaced by {self._by(stage)} ({self._flag(stage)})")
            kw[stage] = new
        if self.settings.uses_local():
            self._offline_turn_detection(kw)
        if self.io is not None and "aec_warmup_duration" not in kw:
            kw["aec_warmup_duration"] = None  # simulate: no echo (see server.start_session)
        return kw

    def _flag(self, stage: str) -> str:
        every = all(getattr(self.settings, s) == "local" for s in STAGES)
        return "--local" if every and len(self.settings.replace) == 3 else FLAG[stage]

    def _offline_turn_detection(self, kw: dict[str, Any]) -> None:
        handling = kw.get("turn_handling")
        handling = dict(handling) if isinstance(handling, dict) else {}
        deprecated = kw.get("turn_detection", NOT_GIVEN)
        mode = deprecated if deprecated is not NOT_GIVEN else handling.get("turn_detection")
        if isinstance(mode, str):
            return
        if mode is not None:
            self.note(f"lkmetrics: the agent's turn detector {type(mode).__name__} replaced by "
                      "VAD endpointing (its model is downloaded; local models run offline)")
        if deprecated is not NOT_GIVEN:
            kw["turn_detection"] = "vad"
        else:
            handling["turn_detection"] = "vad"
            kw["turn_handling"] = handling

    def agent_kwargs(self, agent: Any, kw: dict[str, Any]) -> dict[str, Any]:
        replacing = [s for s in self.settings.replace if _given(kw.get(s, NOT_GIVEN))]
        if not replacing:
            return kw
        kw = dict(kw)
        built = self._replacements()
        for stage in replacing:
            self.note(f"lkmetrics: {type(agent).__name__}'s {stage.upper()} "
                      f"{describe(kw[stage])} replaced by {self._by(stage)} ({self._flag(stage)})")
            kw[stage] = built[stage]
        if self.settings.uses_local() and not isinstance(kw.get("turn_detection", ""), str):
            self.note(f"lkmetrics: {type(agent).__name__}'s turn detector replaced by VAD "
                      "endpointing (local models run offline)")
            kw["turn_detection"] = "vad"
        return kw

    def start_kwargs(self, session: Any, kw: dict[str, Any]) -> dict[str, Any]:
        kw = dict(kw)
        if self.io is not None:  # simulate: the caller is the room
            mic, speaker = self.io()
            session.input.audio = mic
            session.output.audio = speaker
            for key in ("room", "room_options", "room_input_options", "room_output_options"):
                kw.pop(key, None)
            kw["record"] = False
        elif self.settings.uses_local():
            kw["room_options"] = self._without_noise_cancellation(kw.get("room_options"))
        return kw

    def _without_noise_cancellation(self, options: Any) -> Any:
        audio = getattr(options, "audio_input", None)
        nc = getattr(audio, "noise_cancellation", None)
        if nc is None or not dataclasses.is_dataclass(audio) or isinstance(audio, type):
            return options if options is not None else NOT_GIVEN
        self.note(f"lkmetrics: the agent's noise cancellation {type(nc).__name__} removed "
                  "(LiveKit Cloud only; local models run offline)")
        return dataclasses.replace(options, audio_input=dataclasses.replace(
            audio, noise_cancellation=None))

    async def check_prompt(self, agent: Any) -> None:
        """Under ``--local``, refuse an agent whose instructions do not fit the local
        LLM's context (one error naming the sizes, instead of a reply that never comes)."""
        if ("llm" not in self.settings.replace or self.settings.llm != "local"
                or not self.settings.llm_base_url):
            return
        import asyncio

        from lkmetrics.agent.server import LOCAL_MAX_TOKENS
        from lkmetrics.local.context import check_fits, prompt_tokens

        # the instructions only: the local server's chat template leaves the tool schemas out
        text = str(getattr(agent, "instructions", "") or "")
        try:
            tokens = await asyncio.to_thread(prompt_tokens, self.settings.llm_base_url, text)
        except Exception:  # a server without the count endpoint: let the request tell
            return
        # the template, the caller's words and the reply need room too
        check_fits(type(agent).__name__, tokens, LOCAL_MAX_TOKENS + 64)

    # -- capture --

    def session_body(self, session: Any, agent: Any) -> dict[str, Any]:
        body: dict[str, Any] = dict(session_info(self.settings))
        for stage in STAGES:
            if stage not in self.settings.replace:
                body[stage] = None if getattr(session, stage) is None else describe(
                    getattr(session, stage))
        if "tts" not in self.settings.replace:
            body["voice"] = None
        if "llm" not in self.settings.replace:
            body["llm_base_url"] = body["llm_model"] = None
        body["agent"] = self.settings.agent
        body["agent_target"] = self.resolved
        body["tools"] = declared_tools(session, agent)
        body.update(self.info)
        return body

    def started(self, session: Any, agent: Any) -> Capture:
        capture = Capture(self.pipeline())
        capture.name_agents = True
        capture.start(session_body(self, session, agent))  # type: ignore[arg-type]
        self.captures[id(session)] = capture
        self.sessions.append(session)
        return capture

    def attached(self, session: Any, capture: Capture, agent: Any) -> None:
        capture.attach(session, [*components(session, agent), *self.built_llms])
        if self.on_session is not None:
            self.on_session(session, capture)

    def agent_changed(self, session: Any, agent: Any) -> None:
        capture = self.captures.get(id(session))
        if capture is not None:
            capture.attach(session, components(session, agent))

    def end_all(self) -> None:
        for capture in list(self.captures.values()):
            capture.end()


def session_body(hooks: Hooks, session: Any, agent: Any) -> dict[str, Any]:
    return hooks.session_body(session, agent)


def declared_tools(session: Any, agent: Any) -> list[str]:
    """The function tools the session and its agent declare (the tool series' label values)."""
    try:
        return sorted(set(get_fnc_tool_names([*session.tools, *agent.tools])))
    except Exception:  # a toolset LiveKit cannot name: no bound beyond the calls seen
        return []


def components(session: Any, agent: Any) -> list[Any]:
    """The session's components and those the agent brings of its own."""
    found = [session.stt, session.llm, session.tts, session.vad]
    for name in ("stt", "llm", "tts", "vad"):
        own = getattr(agent, name, NOT_GIVEN)
        if _given(own) and not isinstance(own, str):
            found.append(own)
    return [c for c in found if c is not None and hasattr(c, "on")]


# -- the patches: installed once, acting through the active Hooks --

_active: Hooks | None = None
_installed = False
_building: contextvars.ContextVar[bool] = contextvars.ContextVar("lkmetrics_building",
                                                                 default=False)
# hooks that act only in the current context (an asyncio task and the tasks it starts), over
# the process-wide ones: several simulated callers on one loop (bench voice), each its own
_scoped: contextvars.ContextVar[Hooks | None] = contextvars.ContextVar("lkmetrics_hooks",
                                                                      default=None)


def activate(hooks: Hooks | None) -> None:
    """Make ``hooks`` act on the sessions this process starts from now on (None: stop)."""
    global _active
    _install()
    _patch_turn_detector()
    _active = hooks


@contextlib.contextmanager
def activated_here(hooks: Hooks) -> Iterator[None]:
    """Make ``hooks`` act on the sessions started in this context only (this asyncio task and
    the tasks created from it, e.g. the user's entrypoint), until the block ends."""
    _install()
    _patch_turn_detector()
    token = _scoped.set(hooks)
    try:
        yield
    finally:
        _scoped.reset(token)


def active() -> Hooks | None:
    scoped = _scoped.get()
    return scoped if scoped is not None else _active


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


_patched_detector = False


def _patch_turn_detector() -> None:
    """LiveKit's turn-detector models (``MultilingualModel()``, ``EnglishModel()``) read their
    downloaded files when built, in the agent's code, before lkmetrics sees the session. Under
    ``--local`` they are built without them (the session then uses VAD endpointing, see
    :meth:`Hooks.session_kwargs`); otherwise they are built as LiveKit builds them."""
    global _patched_detector
    base = sys.modules.get("livekit.plugins.turn_detector.base")
    if _patched_detector or base is None or not hasattr(base, "EOUModelBase"):
        return
    _patched_detector = True
    original = base.EOUModelBase.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kw: Any) -> None:
        hooks = active()
        if hooks is not None and hooks.settings.uses_local():
            kw["load_languages"] = False
        original(self, *args, **kw)

    base.EOUModelBase.__init__ = init


def _patch_background_audio() -> None:
    """``BackgroundAudioPlayer.start(room=ctx.room)`` publishes a track in the room; under
    ``simulate`` there is no room (the caller is the session's audio I/O), so the player runs
    (its ``play()`` handles complete, the thinking sound follows the agent's state) and its
    mixed audio is dropped at the pace it plays. Elsewhere it runs as LiveKit runs it."""
    import asyncio

    from livekit.agents.voice import background_audio

    player = background_audio.BackgroundAudioPlayer
    publish = player._publish_track
    mix = player._run_mixer_task

    @functools.wraps(publish)
    async def publish_track(self: Any) -> None:
        hooks = active()
        if hooks is None or hooks.io is None:
            return await publish(self)
        hooks.note("lkmetrics: the agent's BackgroundAudioPlayer plays to no one (simulate has "
                   "no room)")

    @functools.wraps(mix)
    async def run_mixer(self: Any) -> None:
        hooks = active()
        if hooks is None or hooks.io is None:
            return await mix(self)
        async for frame in self._audio_mixer:
            await asyncio.sleep(frame.duration)

    player._publish_track = publish_track  # type: ignore[method-assign]
    player._run_mixer_task = run_mixer  # type: ignore[method-assign]


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    session_init = AgentSession.__init__
    session_start = AgentSession.start
    update_agent = AgentSession.update_agent
    agent_init = Agent.__init__

    @functools.wraps(session_init)
    def init(self: Any, **kw: Any) -> None:
        hooks = active()
        session_init(self, **(hooks.session_kwargs(kw) if hooks is not None else kw))

    @functools.wraps(session_start)
    async def start(self: Any, agent: Any, **kw: Any) -> Any:
        hooks = active()
        if hooks is None or id(self) in hooks.captures:
            return await session_start(self, agent, **kw)
        kw = hooks.start_kwargs(self, kw)
        await hooks.check_prompt(agent)
        capture = hooks.started(self, agent)
        try:
            result = await session_start(self, agent, **kw)
        except BaseException:
            capture.end()
            raise
        hooks.attached(self, capture, agent)
        return result

    @functools.wraps(update_agent)
    def update(self: Any, agent: Any) -> None:
        update_agent(self, agent)
        hooks = active()
        if hooks is not None:
            hooks.agent_changed(self, agent)

    @functools.wraps(agent_init)
    def new_agent(self: Any, **kw: Any) -> None:
        hooks = active()
        agent_init(self, **(hooks.agent_kwargs(self, kw) if hooks is not None else kw))

    llm_init = LLM.__init__

    @functools.wraps(llm_init)
    def new_llm(self: Any, *args: Any, **kw: Any) -> None:
        llm_init(self, *args, **kw)
        hooks = active()
        if hooks is not None and not _building.get():
            hooks.llm_built(self)

    _patch_background_audio()
    LLM.__init__ = new_llm  # type: ignore[method-assign]
    AgentSession.__init__ = init  # type: ignore[method-assign]
    AgentSession.start = start  # type: ignore[method-assign]
    AgentSession.update_agent = update  # type: ignore[method-assign]
    Agent.__init__ = new_agent  # type: ignore[method-assign]
