"""Unit prices per model: the shipped STT/TTS price file, user price files and genai-prices.

A price file is JSON (format in README.md, "Cost"): ``{"currency": "USD", "prices": [ENTRY,
...]}`` where an entry is ``{"type": "stt"|"tts"|"llm", "model": "provider/model", RATES...,
"source": "...", "date": "YYYY-MM-DD", "aliases": [...]}``. Lookups try the user's files
(``--prices FILE`` / ``LKMETRICS_PRICES``) first, then the file shipped in this package, then,
for LLM tokens only, the genai-prices package (pydantic's maintained price data, shipped
inside the package, offline). A model lkmetrics runs locally costs 0; any other model
without a price is unknown, never guessed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from lkmetrics.errors import UsageError

PRICES_ENV = "LKMETRICS_PRICES"
CURRENCY = "USD"
KINDS = ("llm", "stt", "tts")

# the rates an entry of each type may carry (USD per unit), and those it must carry
RATES: dict[str, tuple[str, ...]] = {
    "stt": ("per_minute",),
    "tts": ("per_million_characters",),
    "llm": ("input_per_million_tokens", "cached_input_per_million_tokens",
            "output_per_million_tokens"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "stt": ("per_minute",),
    "tts": ("per_million_characters",),
    "llm": ("input_per_million_tokens", "output_per_million_tokens"),
}
UNITS = {
    "per_minute": "USD per minute of audio",
    "per_million_characters": "USD per 1M characters",
    "input_per_million_tokens": "USD per 1M input tokens",
    "cached_input_per_million_tokens": "USD per 1M cached input tokens",
    "output_per_million_tokens": "USD per 1M output tokens",
}
_ENTRY_FIELDS = frozenset({"type", "model", "aliases", "source", "date", "note"})
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# LiveKit's usage type tags (``llm`` in newer releases, ``llm_usage`` in 1.8) -> our kind
_USAGE_KIND = {"llm": "llm", "llm_usage": "llm", "stt": "stt", "stt_usage": "stt",
               "tts": "tts", "tts_usage": "tts"}


def usage_kind(entry: Mapping[str, Any]) -> str | None:
    """``llm``, ``stt`` or ``tts`` for a LiveKit model-usage dump; None for other types."""
    return _USAGE_KIND.get(str(entry.get("type") or ""))


@dataclass(frozen=True)
class Price:
    """What one model costs per unit of usage, and where the figure comes from."""

    kind: str
    model: str
    rates: Mapping[str, float]
    source: str
    date: str
    aliases: tuple[str, ...] = ()
    note: str = ""
    genai: tuple[str, str] | None = None  # (model, provider id): priced by genai-prices
    local: bool = False
    tiered: bool = False  # genai-prices' prices are tiered: let it calculate

    def cost(self, usage: Mapping[str, Any]) -> float:
        """USD for a LiveKit model-usage dump (cumulative counts of one model)."""
        if self.local:
            return 0.0
        if self.kind == "stt":
            return _num(usage.get("audio_duration")) / 60 * self.rates["per_minute"]
        if self.kind == "tts":
            chars = _num(usage.get("characters_count"))
            return chars / 1e6 * self.rates["per_million_characters"]
        total_in = _num(usage.get("input_tokens"))
        cached = min(_num(usage.get("input_cached_tokens")), total_in)
        out = _num(usage.get("output_tokens"))
        if self.genai is not None and self.tiered:
            return _genai_cost(self.genai, int(total_in), int(cached), int(out))
        r = self.rates
        cached_rate = r.get("cached_input_per_million_tokens", r["input_per_million_tokens"])
        return ((total_in - cached) * r["input_per_million_tokens"] + cached * cached_rate
                + out * r["output_per_million_tokens"]) / 1e6


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


# -- local models -----------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``127.0.0.1``, ``localhost:8080``, ``[::1]:80``) is this machine."""
    h = host.strip().lower()
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def is_local(provider: str, model: str) -> bool:
    """A model lkmetrics itself runs on this machine (provider ``local``: ``--local``, Whisper,
    Piper, SmolLM2). Any other endpoint, loopback included (a gateway or a proxy on
    localhost), is priced by its model name or stays unknown."""
    return provider.strip().lower() == "local"


def is_endpoint(provider: str) -> bool:
    """A provider that is a host (``127.0.0.1:8080``, ``api.example.com``): the OpenAI plugin
    names an ``--llm-base-url`` endpoint so; its model is priced by its name alone."""
    p = provider.strip()
    return bool(p) and (is_loopback(p) or ":" in p or "." in p)


# -- age --------------------------------------------------------------------------------------

STALE_DAYS = 180


def stale(found: Iterable[Price], today: date | None = None) -> list[Price]:
    """The prices (each once) whose date is more than :data:`STALE_DAYS` days before today."""
    today = today or date.today()
    out: dict[tuple[str, str], Price] = {}
    for p in found:
        try:
            taken = date.fromisoformat(p.date) if p.date else None
        except ValueError:
            taken = None
        if taken is not None and (today - taken).days > STALE_DAYS:
            out.setdefault((p.kind, p.model), p)
    return list(out.values())


def stale_note(found: Iterable[Price], today: date | None = None) -> str | None:
    """One line naming the prices older than :data:`STALE_DAYS` days, or None."""
    old = stale(found, today)
    if not old:
        return None
    oldest = min(p.date for p in old)
    names = ", ".join(sorted(p.model for p in old))
    if len(names) > 120:
        names = f"{len(old)} models"
    return (f"Note: prices older than {STALE_DAYS} days (oldest {oldest}) for {names}: "
            "prices change; check them against their sources (lkmetrics prices MODEL) or "
            "give current ones with --prices FILE.")


# -- files ------------------------------------------------------------------------------------


def _bad(where: str, msg: str) -> UsageError:
    return UsageError(f"{where}: {msg}")


def parse_prices(text: str, name: str) -> list[Price]:
    """The entries of a price file's text; UsageError naming the line or field when bad."""
    from lkmetrics.safety import check_depth

    check_depth(text, f"prices file {name}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(f"{name}:{e.lineno}:{e.colno}", f"not valid JSON ({e.msg}).") from None
    if not isinstance(data, dict):
        raise _bad(name, 'expected a JSON object {"currency": "USD", "prices": [...]}.')
    currency = data.get("currency", CURRENCY)
    if currency != CURRENCY:
        raise _bad(f"{name}: currency", f"{currency!r} is not supported; lkmetrics "
                   f'prices in USD only ("currency": "USD").')
    unknown = set(data) - {"currency", "prices", "about"}
    if unknown:
        raise _bad(f"{name}: {sorted(unknown)[0]}", "unknown field; expected currency, "
                   "prices and about.")
    entries = data.get("prices")
    if not isinstance(entries, list):
        raise _bad(f"{name}: prices", "expected a list of price entries.")
    return [_entry(e, f"{name}: prices[{i}]") for i, e in enumerate(entries)]


def _entry(raw: Any, where: str) -> Price:
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object with type, model and prices.")
    kind = raw.get("type")
    if kind not in KINDS:
        raise _bad(f"{where}.type", f"expected llm, stt or tts (got {kind!r}).")
    model = raw.get("model")
    if not isinstance(model, str) or "/" not in model.strip("/"):
        raise _bad(f"{where}.model", f"expected PROVIDER/MODEL, e.g. deepgram/nova-3 "
                   f"(got {model!r}).")
    for key in raw:
        if key not in _ENTRY_FIELDS and key not in RATES[kind]:
            raise _bad(f"{where}.{key}", f"unknown field for a {kind} price; its prices are "
                       f"{', '.join(RATES[kind])}.")
    rates: dict[str, float] = {}
    for key in RATES[kind]:
        if key not in raw:
            if key in REQUIRED[kind]:
                raise _bad(f"{where}.{key}", f"missing ({UNITS[key]}).")
            continue
        v = raw[key]
        if (not isinstance(v, int | float) or isinstance(v, bool) or math.isnan(v)
                or math.isinf(v)):
            raise _bad(f"{where}.{key}", f"expected a number ({UNITS[key]}), got {v!r}.")
        if v < 0:
            raise _bad(f"{where}.{key}", f"a price cannot be negative (got {v}).")
        rates[key] = float(v)
    date = raw.get("date", "")
    if not isinstance(date, str) or (date and not _DATE_RE.match(date)):
        raise _bad(f"{where}.date", f"expected YYYY-MM-DD (got {date!r}).")
    source = raw.get("source", "")
    note = raw.get("note", "")
    for key, value in (("source", source), ("note", note)):
        if not isinstance(value, str):
            raise _bad(f"{where}.{key}", f"expected text (got {value!r}).")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _bad(f"{where}.aliases", "expected a list of PROVIDER/MODEL names.")
    return Price(kind, model, rates, source, date, tuple(aliases), note)


def load_file(path: Path) -> list[Price]:
    """The entries of a user's price file, with their source defaulting to the file."""
    from lkmetrics.safety import read_text

    if not Path(path).exists():
        raise UsageError(f"prices file {path} does not exist.")
    text = read_text(path, "prices file", max_bytes=4 * 1024 * 1024)
    out = []
    for p in parse_prices(text, str(path)):
        out.append(p if p.source else Price(p.kind, p.model, p.rates, str(path), p.date,
                                            p.aliases, p.note))
    return out


SHIPPED = "prices.json"


def shipped() -> list[Price]:
    """The price file shipped inside lkmetrics."""
    text = resources.files("lkmetrics.cost").joinpath(SHIPPED).read_text(encoding="utf-8")
    return parse_prices(text, f"lkmetrics/cost/{SHIPPED}")


# -- genai-prices -----------------------------------------------------------------------------


def genai_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:
        return None


def _genai_price(provider: str, model: str) -> Price | None:
    """An LLM's token prices from genai-prices; None when it is not installed or unknown."""
    try:
        from genai_prices import data_snapshot
    except ImportError:
        return None
    snapshot = data_snapshot.get_snapshot()
    try:
        prov, info = snapshot.find_provider_model(model, None, provider or None, None)
    except LookupError:
        return None
    from datetime import datetime, timezone

    mp = info.get_prices(datetime.now(timezone.utc))
    rates: dict[str, float] = {}
    from decimal import Decimal

    for ours, theirs in (("input_per_million_tokens", "input_mtok"),
                         ("cached_input_per_million_tokens", "cache_read_mtok"),
                         ("output_per_million_tokens", "output_mtok")):
        v = getattr(mp, theirs, None)
        if isinstance(v, Decimal):
            rates[ours] = float(v)
    urls = list(getattr(prov, "pricing_urls", None) or [])
    source = f"genai-prices {genai_version() or '?'} (pydantic)" + (f", {urls[0]}" if urls
                                                                    else "")
    # flat per-token prices (most models) are priced here directly: genai-prices' own
    # calculation costs ~0.2 ms a call, and a report prices every usage record; tiered prices
    # (no flat input/output figure) still go through it
    flat = {"input_per_million_tokens", "output_per_million_tokens"} <= rates.keys()
    return Price("llm", f"{prov.id}/{info.id}", rates, source, "", (), str(mp),
                 genai=(info.id, prov.id), tiered=not flat)


def _genai_cost(ref: tuple[str, str], total_in: int, cached: int, out: int) -> float:
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=total_in, cache_read_tokens=cached, output_tokens=out)
    return float(calc_price(usage, ref[0], provider_id=ref[1]).total_price)


# -- lookup -----------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return name.strip().lower()


def candidates(provider: str, model: str) -> Iterator[str]:
    """The names to look a usage entry up by, most specific first.

    LiveKit Inference reports provider ``livekit`` and a model ``openai/gpt-4.1-mini``; a
    plugin reports provider ``openai`` and model ``gpt-4.1-mini``; a language suffix
    (``deepgram/nova-3:en``) is dropped when the name with it is unknown.
    """
    names: list[str] = []
    if "/" in model:
        names.append(model)
    if provider and provider.lower() != "livekit":
        names.append(f"{provider}/{model}")
    if not names:
        names.append(model)
    for n in list(names):
        if ":" in n.rsplit("/", 1)[-1]:
            names.append(n.rsplit(":", 1)[0])
    seen = set()
    for n in names:
        if _norm(n) not in seen:
            seen.add(_norm(n))
            yield _norm(n)


@dataclass
class PriceBook:
    """Every price lkmetrics knows: user files first, then the shipped file, then
    genai-prices (LLM only)."""

    entries: list[Price]
    files: list[Path] = field(default_factory=list)
    use_genai: bool = True

    def __post_init__(self) -> None:
        self._index: dict[tuple[str, str], Price] = {}
        for p in self.entries:  # the first entry of a name wins: user files come first
            for name in (p.model, *p.aliases):
                self._index.setdefault((p.kind, _norm(name)), p)
        self._found: dict[tuple[str, str, str], Price | None] = {}

    def lookup(self, kind: str, provider: str, model: str) -> Price | None:
        """The price of a model (``provider``/``model`` as LiveKit reports them), or None."""
        key = (kind, provider, model)
        if key not in self._found:  # a report looks up the same few models per session
            self._found[key] = self._lookup(kind, provider, model)
        return self._found[key]

    def _lookup(self, kind: str, provider: str, model: str) -> Price | None:
        if is_local(provider, model):
            return Price(kind, f"{provider}/{model}" if provider else model, {},
                         "runs locally", "", local=True)
        for name in candidates(provider, model):
            found = self._index.get((kind, name))
            if found is not None:
                return found
        endpoint = is_endpoint(provider)
        if endpoint:  # an --llm-base-url endpoint: its model by name (gpt-4.1-mini)
            bare = _norm(model.rsplit("/", 1)[-1])
            found = next((e for (k, n), e in self._index.items()
                          if k == kind and n.rsplit("/", 1)[-1] == bare), None)
            if found is not None:
                return found
        if kind != "llm" or not self.use_genai:
            return None
        prov, name = provider, model
        if "/" in model:
            prov, name = model.split("/", 1)
        elif prov.lower() == "livekit" or endpoint:
            prov = ""
        return _genai_price(prov, name.split(":", 1)[0])

    def lookup_name(self, name: str) -> list[Price]:
        """Every price (of any kind) for ``provider/model`` or a bare model name."""
        provider, _, model = name.rpartition("/")
        out = []
        for kind in KINDS:
            p = self.lookup(kind, provider, model)
            if p is None and not provider:  # a bare name: match the model part
                p = next((e for (k, n), e in self._index.items()
                          if k == kind and n.rsplit("/", 1)[-1] == _norm(model)), None)
            if p is not None:
                out.append(p)
        return out


def prices_files(option: Path | None) -> list[Path]:
    """The user's price file: --prices FILE, else $LKMETRICS_PRICES, else none."""
    if option is not None:
        return [option]
    env = os.environ.get(PRICES_ENV, "").strip()
    return [Path(env)] if env else []


def load(files: Sequence[Path] = (), *, use_genai: bool = True) -> PriceBook:
    """The user's files (the last given wins), then the shipped file."""
    entries: list[Price] = []
    for f in reversed(list(files)):
        entries.extend(load_file(f))
    entries.extend(shipped())
    return PriceBook(entries, list(files), use_genai)


def load_default(option: Path | None = None) -> PriceBook:
    return load(prices_files(option))


_DEFAULT: dict[str, PriceBook] = {}


def default_book() -> PriceBook:
    """The prices of ``LKMETRICS_PRICES`` and the shipped file, loaded once per value."""
    key = os.environ.get(PRICES_ENV, "")
    if key not in _DEFAULT:
        _DEFAULT[key] = load_default()
    return _DEFAULT[key]

