"""The user's agent (``--agent TARGET``): what TARGET names, importing it as ``python agent.py``
would, and finding its entrypoint, setup and session-end functions.

:func:`lkmetrics.target.parse_target` checks TARGET without importing anything (bad input
fails before livekit loads); :func:`load` imports the module and resolves NAME.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lkmetrics.errors import LkmetricsError, UsageError
from lkmetrics.target import Target, parse_target


class UserCodeError(LkmetricsError):
    """The user's agent raised while being imported or run (its traceback is printed)."""


@dataclass
class UserAgent:
    """The resolved agent: the functions LiveKit would call, and what they came from."""

    target: Target
    resolved: str  # module:NAME
    kind: str  # "server", "worker" or "entrypoint"
    entrypoint: Callable[[Any], Any]
    setup: Callable[[Any], Any] | None = None
    on_session_end: Callable[[Any], Any] | None = None
    on_request: Callable[[Any], Any] | None = None
    agent_name: str = ""

    @property
    def where(self) -> str:
        return str(self.target.path) if self.target.path else str(self.target.module)


def import_module(target: Target) -> Any:
    """Import the target's module as ``python agent.py`` sees it: its directory first on
    ``sys.path`` (sibling imports), under its own name (never ``__main__``)."""
    if target.module is not None:
        try:
            return importlib.import_module(target.module)
        except ModuleNotFoundError as e:
            if e.name and target.module.startswith(e.name):
                raise UsageError(f"--agent {target.spec}: no module named {e.name!r} (run from "
                                 "the project directory, or give the .py file).") from None
            raise
    assert target.path is not None
    directory = str(target.path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = target.path.stem
    found = sys.modules.get(name)
    if found is not None and getattr(found, "__file__", None) == str(target.path):
        return found
    spec = importlib.util.spec_from_file_location(name, target.path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--agent {target.path} cannot be imported as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _is_entrypoint(obj: Any, module_name: str) -> bool:
    if not inspect.iscoroutinefunction(obj) or getattr(obj, "__module__", None) != module_name:
        return False
    params = list(inspect.signature(obj).parameters.values())
    if len(params) != 1:
        return False
    ann = params[0].annotation
    return "JobContext" in (ann if isinstance(ann, str) else getattr(ann, "__name__", ""))


def resolve(module: Any, target: Target) -> UserAgent:
    """The AgentServer, WorkerOptions or entrypoint that NAME names, or the module's one."""
    from livekit.agents import AgentServer, WorkerOptions

    mod_name = module.__name__
    members = {k: v for k, v in vars(module).items() if not k.startswith("__")}
    if target.name is not None:
        if target.name not in members:
            raise UsageError(f"--agent {target.spec}: {mod_name} has no {target.name!r}"
                             f"{_found(members, mod_name)}.")
        name, obj = target.name, members[target.name]
    else:
        servers = [k for k, v in members.items() if isinstance(v, AgentServer)]
        workers = [k for k, v in members.items() if isinstance(v, WorkerOptions)]
        entries = [k for k, v in members.items() if _is_entrypoint(v, mod_name)]
        if not servers and not workers:
            main = main_block_worker(module)
            if main is not None:  # cli.run_app(WorkerOptions(...)) under __main__
                members["__main__"] = main
                workers = ["__main__"]
        for found, what in ((servers, "AgentServer"), (workers, "WorkerOptions"),
                            (entries, "entrypoint")):
            if len(found) > 1:
                raise UsageError(f"--agent {target.spec}: {mod_name} has several {what}s "
                                 f"({', '.join(found)}); name one, e.g. "
                                 f"{target.spec}:{found[0]}.")
            if found:
                name = found[0]
                break
        else:
            raise UsageError(f"--agent {target.spec}: {mod_name} has no AgentServer, "
                             "WorkerOptions or entrypoint(ctx: JobContext).")
        obj = members[name]
    resolved = f"{mod_name}:{name}"
    if isinstance(obj, AgentServer):
        entry = getattr(obj, "_entrypoint_fnc", None)
        if entry is None:
            raise UsageError(f"--agent {target.spec}: the AgentServer {name} has no "
                             "@server.rtc_session() entrypoint.")
        return UserAgent(target, resolved, "server", entry, setup=obj.setup_fnc,
                         on_session_end=getattr(obj, "_session_end_fnc", None),
                         on_request=getattr(obj, "_request_fnc", None),
                         agent_name=str(getattr(obj, "_agent_name", "") or ""))
    if isinstance(obj, WorkerOptions):
        return UserAgent(target, resolved, "worker", obj.entrypoint_fnc, setup=obj.prewarm_fnc,
                         on_request=obj.request_fnc, agent_name=obj.agent_name or "")
    if callable(obj) and inspect.iscoroutinefunction(obj):
        return UserAgent(target, resolved, "entrypoint", obj)
    raise UsageError(f"--agent {target.spec}: {name} is a {type(obj).__name__}, not an "
                     "AgentServer, WorkerOptions or entrypoint(ctx: JobContext).")


WORKER_FIELDS = ("entrypoint_fnc", "prewarm_fnc", "request_fnc", "agent_name")


def main_block_worker(module: Any) -> Any:
    """The ``WorkerOptions(entrypoint_fnc=..., prewarm_fnc=...)`` that the module's
    ``if __name__ == "__main__":`` block gives ``cli.run_app`` (the most common shape of
    LiveKit's examples), built from the module's own functions without running the block;
    None when there is none or its arguments are not plain names and constants."""
    from livekit.agents import WorkerOptions

    path = getattr(module, "__file__", None)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and _called(call) == "WorkerOptions":
                    kwargs: dict[str, Any] = {}
                    for kw in call.keywords:
                        if kw.arg not in WORKER_FIELDS:
                            continue
                        if isinstance(kw.value, ast.Name) and hasattr(module, kw.value.id):
                            kwargs[kw.arg] = getattr(module, kw.value.id)
                        elif isinstance(kw.value, ast.Constant):
                            kwargs[kw.arg] = kw.value.value
                        else:
                            return None
                    if callable(kwargs.get("entrypoint_fnc")):
                        return WorkerOptions(**kwargs)
    return None


def _is_main_test(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _found(members: dict[str, Any], mod_name: str) -> str:
    from livekit.agents import AgentServer, WorkerOptions

    names = [k for k, v in members.items() if isinstance(v, AgentServer | WorkerOptions)
             or _is_entrypoint(v, mod_name)]
    return f" (found: {', '.join(names)})" if names else ""


def load(spec: str) -> UserAgent:
    """Import TARGET and resolve it. An exception in the user's module propagates as it is
    (its traceback is theirs); :func:`describe_failure` says where it came from."""
    target = parse_target(spec)
    return resolve(import_module(target), target)


def describe_failure(spec: str, what: str) -> str:
    """The one line under the user's traceback."""
    return f"{what} of --agent {spec} failed (the traceback above is from the agent's code)."


def print_traceback(exc: BaseException) -> None:
    """The user's traceback: from their first frame on (lkmetrics' own frames left out)."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and "/lkmetrics/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__,
                              file=sys.stderr)
    sys.stderr.flush()


def load_reporting(spec: str) -> UserAgent:
    """:func:`load`, an exception in the user's module turned into its traceback on stderr
    and a :class:`UserCodeError` naming where it came from."""
    try:
        return load(spec)
    except LkmetricsError:
        raise
    except Exception as e:
        print_traceback(e)
        raise UserCodeError(describe_failure(spec, "importing the module")) from None
