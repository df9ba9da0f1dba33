"""Cost per turn and per session, computed by hand here from usage records and price files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lkmetrics.analysis import budgets, report
from lkmetrics.cost import compute, prices
from lkmetrics.cost.prices import PriceBook
from lkmetrics.errors import UsageError
from lkmetrics.store import Store
from tests.helpers.store import run, session_records

Record = dict[str, Any]

# hand-made prices for the scripted session (USD)
HAND = {
    "currency": "USD",
    "prices": [
        {"type": "llm", "model": "openai/gpt-4.1-mini", "input_per_million_tokens": 0.4,
         "cached_input_per_million_tokens": 0.1, "output_per_million_tokens": 1.6,
         "source": "test", "date": "2026-01-01"},
        {"type": "stt", "model": "deepgram/nova-3", "aliases": ["deepgram/nova-3-general"],
         "per_minute": 0.0077, "source": "test", "date": "2026-01-01"},
        {"type": "tts", "model": "cartesia/sonic-3", "per_million_characters": 50.0,
         "source": "test", "date": "2026-01-01"},
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def usage(llm: tuple[int, int, int] | None, stt: float | None, tts: int | None,
          inference: bool = True) -> list[dict[str, Any]]:
    """A cumulative usage dump as LiveKit 1.8 writes it (LiveKit Inference by default)."""
    out: list[dict[str, Any]] = []
    if llm is not None:
        provider, model = ("livekit", "openai/gpt-4.1-mini") if inference else (
            "openai", "gpt-4.1-mini")
        out.append({"type": "llm_usage", "provider": provider, "model": model,
                    "input_tokens": llm[0], "input_cached_tokens": llm[1],
                    "output_tokens": llm[2]})
    if stt is not None:
        out.append({"type": "stt_usage", "provider": "livekit",
                    "model": "deepgram/nova-3-general", "audio_duration": stt})
    if tts is not None:
        out.append({"type": "tts_usage", "provider": "livekit", "model": "cartesia/sonic-3",
                    "characters_count": tts, "audio_duration": tts / 15})
    return out


def scripted_session(sid: str = "s_cost") -> list[Record]:
    """Two turns; turn 1's TTS usage arrives just after its turn record; the session ends
    with speech no turn answers."""
    seq = 0
    t = 1_764_240_000.0

    def rec(kind: str, **fields: Any) -> Record:
        nonlocal seq, t
        seq += 1
        t += 3.0
        return {"schema": 1, "kind": kind, "session_id": sid, "seq": seq, "time": t, **fields}

    return [
        rec("session", stt="deepgram/nova-3-general", llm="openai/gpt-4.1-mini",
            tts="cartesia/sonic-3"),
        rec("usage", usage=usage(None, 6.0, None)),                 # caller speaks: turn 1
        rec("eou", end_of_utterance_delay=0.4, transcription_delay=0.1),
        rec("usage", usage=usage((1200, 0, 40), 6.0, None)),         # turn 1's LLM
        rec("turn", turn=1, e2e_latency=1.0),
        rec("usage", usage=usage((1200, 0, 40), 6.0, 180)),          # turn 1's TTS, late
        rec("usage", usage=usage((1200, 0, 40), 10.5, 180)),         # caller speaks: turn 2
        rec("eou", end_of_utterance_delay=0.5, transcription_delay=0.1),
        rec("usage", usage=usage((2600, 1024, 95), 10.5, 180)),      # turn 2's LLM, cached
        rec("usage", usage=usage((2600, 1024, 95), 10.5, 400)),      # turn 2's TTS
        rec("turn", turn=2, e2e_latency=1.2),
        rec("usage", usage=usage((2600, 1024, 95), 13.5, 400)),      # speech, no turn
    ]


def hand_llm(inp: int, cached: int, out: int) -> float:
    return ((inp - cached) * 0.4 + cached * 0.1 + out * 1.6) / 1e6


def hand_stt(seconds: float) -> float:
    return seconds / 60 * 0.0077


def hand_tts(chars: int) -> float:
    return chars * 50.0 / 1e6


@pytest.fixture
def hand_book(tmp_path: Path) -> PriceBook:
    return prices.load([write(tmp_path / "hand.json", HAND)], use_genai=False)


def test_scripted_session_costs_as_computed_by_hand(hand_book: PriceBook) -> None:
    cost = compute.session_cost(scripted_session(), hand_book, "s_cost")
    t1, t2 = cost.turns
    assert t1.parts.stt == pytest.approx(hand_stt(6.0))
    assert t1.parts.llm == pytest.approx(hand_llm(1200, 0, 40))
    assert t1.parts.tts == pytest.approx(hand_tts(180))  # arrived after the turn record
    assert t2.parts.stt == pytest.approx(hand_stt(4.5))
    assert t2.parts.llm == pytest.approx(hand_llm(2600, 1024, 95) - hand_llm(1200, 0, 40))
    assert t2.parts.tts == pytest.approx(hand_tts(220))
    total = hand_llm(2600, 1024, 95) + hand_stt(13.5) + hand_tts(400)
    assert cost.parts.total == pytest.approx(total)
    # the last 3 s of speech belong to no turn: the session costs more than its turns
    assert sum(t.parts.total or 0 for t in (t1, t2)) == pytest.approx(total - hand_stt(3.0))
    assert cost.duration == pytest.approx(33.0)
    assert cost.per_minute == pytest.approx(total / (33.0 / 60))
    assert cost.unknown == []


def test_cached_tokens_are_priced_at_the_cached_rate(hand_book: PriceBook) -> None:
    price = hand_book.lookup("llm", "livekit", "openai/gpt-4.1-mini")
    assert price is not None
    entry = usage((1_000_000, 600_000, 0), None, None)[0]
    assert price.cost(entry) == pytest.approx(0.4 * 0.4 + 0.6 * 0.1)
    # without a cached rate, cached tokens cost the input rate
    plain = prices.parse_prices(json.dumps({"prices": [
        {"type": "llm", "model": "x/y", "input_per_million_tokens": 0.4,
         "output_per_million_tokens": 1.6}]}), "t")[0]
    assert plain.cost(entry) == pytest.approx(0.4)


def test_llm_prices_come_from_genai_prices_offline_with_cached_tokens() -> None:
    book = prices.load()
    price = book.lookup("llm", "livekit", "openai/gpt-4.1-mini")
    assert price is not None and price.genai == ("gpt-4.1-mini", "openai")
    assert "genai-prices" in price.source
    rates = price.rates
    entry = usage((10_000, 4_000, 500), None, None)[0]
    by_hand = (6_000 * rates["input_per_million_tokens"]
               + 4_000 * rates["cached_input_per_million_tokens"]
               + 500 * rates["output_per_million_tokens"]) / 1e6
    assert rates["cached_input_per_million_tokens"] < rates["input_per_million_tokens"]
    assert price.cost(entry) == pytest.approx(by_hand)
    # a plugin reports provider and model apart: the same price
    plugin = book.lookup("llm", "openai", "gpt-4.1-mini")
    assert plugin is not None and plugin.cost(entry) == pytest.approx(by_hand)


def test_override_file_wins(tmp_path: Path, hand_book: PriceBook) -> None:
    shipped = prices.load(use_genai=False).lookup("stt", "livekit", "deepgram/nova-3-general")
    assert shipped is not None and shipped.source.startswith("https://deepgram.com")
    mine = write(tmp_path / "mine.json", {"currency": "USD", "prices": [
        {"type": "stt", "model": "deepgram/nova-3-general", "per_minute": 0.5,
         "source": "our contract", "date": "2026-11-01"},
        {"type": "llm", "model": "openai/gpt-4.1-mini", "input_per_million_tokens": 1.0,
         "output_per_million_tokens": 2.0}]})
    book = prices.load([mine])
    stt = book.lookup("stt", "livekit", "deepgram/nova-3-general")
    assert stt is not None and stt.source == "our contract" and stt.rates["per_minute"] == 0.5
    llm = book.lookup("llm", "livekit", "openai/gpt-4.1-mini")
    assert llm is not None and llm.genai is None and llm.source == str(mine)
    cost = compute.session_cost(scripted_session(), book)
    assert cost.parts.stt == pytest.approx(13.5 / 60 * 0.5)
    assert cost.parts.llm == pytest.approx((2600 * 1.0 + 95 * 2.0) / 1e6)


def test_override_through_the_environment(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mine = write(tmp_path / "env.json", {"prices": [
        {"type": "tts", "model": "cartesia/sonic-3", "per_million_characters": 7}]})
    monkeypatch.setenv("LKMETRICS_PRICES", str(mine))
    p = prices.load_default().lookup("tts", "livekit", "cartesia/sonic-3")
    assert p is not None and p.rates["per_million_characters"] == 7
    # --prices FILE beats the environment
    other = write(tmp_path / "opt.json", {"prices": [
        {"type": "tts", "model": "cartesia/sonic-3", "per_million_characters": 9}]})
    p = prices.load_default(other).lookup("tts", "livekit", "cartesia/sonic-3")
    assert p is not None and p.rates["per_million_characters"] == 9


def test_unknown_model_is_unknown_never_guessed(hand_book: PriceBook) -> None:
    records = scripted_session()
    for r in records:
        for u in r.get("usage", []):
            if u["type"] == "tts_usage":
                u["provider"], u["model"] = "acme", "voice-9"
    cost = compute.session_cost(records, hand_book)
    assert cost.parts.tts is None and cost.parts.total is None
    assert cost.parts.llm == pytest.approx(hand_llm(2600, 1024, 95))  # known parts stay
    assert cost.unknown == ["acme/voice-9"]
    assert cost.turns[0].parts.tts is None and cost.turns[0].parts.total is None
    assert cost.per_minute is None


def test_local_models_cost_nothing(hand_book: PriceBook) -> None:
    records = scripted_session()
    records[0].update(stt="local", llm="local", tts="local")
    for r in records:
        for u in r.get("usage", []):
            u["provider"], u["model"] = "local", "whatever-unpriced"
    cost = compute.session_cost(records, hand_book)
    assert cost.parts.as_dict() == {"total": 0.0, "llm": 0.0, "stt": 0.0, "tts": 0.0}
    assert prices.is_local("local", "m") and not prices.is_local("openai", "m")


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:4000", "[::1]:80"])
def test_a_loopback_gateway_is_priced_by_its_model_name_or_unknown(hand_book: PriceBook,
                                                                   host: str) -> None:
    """A gateway or proxy on localhost is not free: only lkmetrics' own local models are.
    Its model is priced by name (the hand-priced gpt-4.1-mini), or stays unknown."""
    records = scripted_session()
    records[0]["llm_base_url"] = f"http://{host}/v1"
    for r in records:
        for u in r.get("usage", []):
            if u["type"] == "llm_usage":
                u["provider"], u["model"] = host, "gpt-4.1-mini"
    cost = compute.session_cost(records, hand_book)
    assert cost.parts.llm == pytest.approx(hand_llm(2600, 1024, 95))
    assert cost.parts.llm is not None and cost.parts.llm > 0 and cost.unknown == []
    for r in records:
        for u in r.get("usage", []):
            if u["type"] == "llm_usage":
                u["model"] = "SmolLM2-135M"
    cost = compute.session_cost(records, hand_book)
    assert cost.parts.llm is None
    assert [u.rsplit("/", 1)[1] for u in cost.unknown] == ["SmolLM2-135M"]
    # genai-prices prices a gateway's model by its name too
    price = prices.load().lookup("llm", host, "gpt-4o")
    assert price is not None and price.genai == ("gpt-4o", "openai")


def test_prices_older_than_180_days_are_flagged_once(tmp_path: Path) -> None:
    from datetime import date, timedelta

    today = date.today()
    fresh, old = (today - timedelta(days=30)).isoformat(), (today - timedelta(days=200))
    book = prices.load([write(tmp_path / "p.json", {"currency": "USD", "prices": [
        {"type": "stt", "model": "acme/ears", "per_minute": 0.01, "source": "t", "date": fresh},
        {"type": "tts", "model": "acme/voice", "per_million_characters": 10.0, "source": "t",
         "date": old.isoformat()}]})], use_genai=False)
    ears, voice = book.lookup("stt", "acme", "ears"), book.lookup("tts", "acme", "voice")
    assert ears is not None and voice is not None
    assert prices.stale([ears, voice, voice]) == [voice]
    note = prices.stale_note([ears, voice, voice])
    assert note is not None and f"(oldest {old.isoformat()}) for acme/voice:" in note
    assert prices.stale_note([ears]) is None
    r = run("prices", "--prices", str(tmp_path / "p.json"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("older than 180 days") == 1
    assert "lkmetrics prices PROVIDER/MODEL" in r.stdout  # how to see the LLM prices
    db = tmp_path / "m.db"
    with Store.open(db) as st:  # a session priced with the old TTS price
        st.insert(session_records("s_old", turns=2, stt="acme/ears", tts="acme/voice"))
    r = run("report", "--db", str(db), "--prices", str(tmp_path / "p.json"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("older than 180 days") == 1 and "for acme/voice:" in r.stdout
    r = run("report", "--db", str(db), "--prices", str(tmp_path / "p.json"), "--format", "json")
    assert json.loads(r.stdout)["cost"]["stale_prices"] == ["acme/voice"]


# -- price files --------------------------------------------------------------------------


def test_shipped_prices_are_dated_and_sourced() -> None:
    entries = prices.shipped()
    assert {"stt", "tts"} <= {p.kind for p in entries}
    for p in entries:
        assert p.source and p.date, p.model
    book = prices.load(use_genai=False)
    # the default models of `lkmetrics console` are priced
    assert book.lookup("stt", "livekit", "deepgram/nova-3-general") is not None
    assert book.lookup("tts", "livekit", "cartesia/sonic-3") is not None


@pytest.mark.parametrize(("text", "named"), [
    ('{"currency": "USD",\n "prices": [\n  {"type": "stt",}\n ]}', "bad.json:3:"),
    ('{"prices": [{"type": "stt", "model": "a/b", "per_minute": -0.01}]}',
     "prices[0].per_minute: a price cannot be negative"),
    ('{"currency": "EUR", "prices": []}', "currency: 'EUR' is not supported"),
    ('{"prices": [{"type": "tts", "model": "a/b", "per_minute": 1}]}',
     "prices[0].per_minute: unknown field for a tts price"),
    ('{"prices": [{"type": "tts", "model": "a/b", "per_million_characters": "5"}]}',
     "prices[0].per_million_characters: expected a number"),
    ('{"prices": [{"type": "asr", "model": "a/b"}]}', "prices[0].type: expected llm, stt"),
    ('{"prices": [{"type": "stt", "model": "nova", "per_minute": 1}]}',
     "prices[0].model: expected PROVIDER/MODEL"),
    ('{"prices": [{"type": "stt", "model": "a/b", "per_minute": 1, "date": "May"}]}',
     "prices[0].date: expected YYYY-MM-DD"),
])
def test_bad_price_files_name_the_line_or_field(tmp_path: Path, text: str,
                                                named: str) -> None:
    bad = write(tmp_path / "bad.json", text)
    with pytest.raises(UsageError) as e:
        prices.load([bad])
    assert named in str(e.value)
    r = run("prices", "--prices", str(bad))
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: ") and named in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_missing_prices_file_is_a_usage_error(tmp_path: Path) -> None:
    r = run("prices", "--prices", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "does not exist" in r.stderr


# -- commands -----------------------------------------------------------------------------


def test_prices_command_shows_unit_prices_source_and_date(tmp_path: Path) -> None:
    r = run("prices", "openai/gpt-4.1-mini", "--format", "json")
    assert r.exit_code == 0, r.stderr
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert row["type"] == "llm" and row["currency"] == "USD"
    assert row["input_per_million_tokens"] > row["cached_input_per_million_tokens"] > 0
    assert "genai-prices" in row["source"]
    r = run("prices", "deepgram/nova-3")
    assert r.exit_code == 0 and "0.0077" in r.stdout and "deepgram.com" in r.stdout
    assert "2025-10-01" in r.stdout
    r = run("prices", "acme/voice-9")
    assert r.exit_code == 1 and "no price known for 'acme/voice-9'" in r.stderr
    r = run("prices", "--format", "json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {row["type"] for row in rows} == {"stt", "tts", "llm"}
    assert [row["model"] for row in rows if row["type"] == "llm"] == ["openai/gpt-4.1-mini"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "m.db"
    with Store.open(path) as s:
        s.insert(scripted_session("s_one"))
        s.insert(session_records("s_two", turns=4, seed=3, stt="deepgram/nova-3-general"))
    return path


def test_report_json_carries_cost_per_model_and_totals(db: Path, tmp_path: Path) -> None:
    hand = write(tmp_path / "hand.json", HAND)
    r = run("report", "s_one", "--db", str(db), "--format", "json", "--prices", str(hand))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    cost = doc["cost"]
    total = hand_llm(2600, 1024, 95) + hand_stt(13.5) + hand_tts(400)
    assert cost["currency"] == "USD" and cost["total"] == pytest.approx(total)
    assert cost["unknown"] == []
    models = {m["model"]: m for m in cost["models"]}
    assert models["cartesia/sonic-3"]["cost"] == pytest.approx(hand_tts(400))
    assert [t["turn"] for t in cost["sessions"][0]["turns"]] == [1, 2]
    figures = {f["figure"]: f for f in doc["figures"]}
    assert figures["cost.session"]["max"] == pytest.approx(total)
    assert figures["cost.turn"]["count"] == 2
    r = run("report", "s_one", "--db", str(db), "--format", "csv", "--prices", str(hand))
    assert "cost.turn" in r.stdout and "cost.session" in r.stdout


def test_prices_option_reprices_turns_the_recording_priced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn costs what it was recorded at, unless --prices FILE asks for other prices:
    then every turn is priced again from its usage."""
    recorded = {"total": 1.0, "llm": 0.25, "stt": 0.25, "tts": 0.5}
    records = [{**r, "cost": recorded} if r["kind"] == "turn" else r
               for r in scripted_session("s_rec")]
    hand = write(tmp_path / "hand.json", HAND)
    monkeypatch.setenv("LKMETRICS_PRICES", str(hand))
    from lkmetrics.cost import prices as prices_mod

    prices_mod._DEFAULT.clear()
    db = tmp_path / "rec.db"
    with Store.open(db) as s:
        s.insert(records)

    def turn_totals(*extra: str) -> list[float]:
        r = run("report", "--db", str(db), "--format", "json", *extra)
        assert r.exit_code == 0, r.stderr
        (session,) = json.loads(r.stdout)["cost"]["sessions"]
        return [t["total"] for t in session["turns"]]

    assert turn_totals() == [1.0, 1.0]
    assert turn_totals("--prices", str(hand)) == pytest.approx([
        hand_llm(1200, 0, 40) + hand_stt(6.0) + hand_tts(180),
        hand_llm(2600, 1024, 95) - hand_llm(1200, 0, 40) + hand_stt(4.5)
        + hand_tts(220)])


def test_report_table_names_an_unknown_model_once(db: Path, tmp_path: Path) -> None:
    only_llm = write(tmp_path / "p.json", {"prices": [HAND["prices"][0]]})
    with Store.open(db) as s:
        s.insert(session_records("s_three", turns=2, seed=4, tts="acme/voice-9"))
    r = run("report", "s_three", "--db", str(db), "--prices", str(only_llm))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("No price for acme/voice-9") == 1
    assert "unknown" in r.stdout


def test_cost_budget_breaks_and_holds(db: Path, tmp_path: Path) -> None:
    hand = write(tmp_path / "hand.json", HAND)
    with Store.open(db) as s:
        rep = report.summarise(s, report.select(s, "s_one", None), None,
                               prices.load([hand], use_genai=False))
    row = rep.row("cost.turn")
    assert row is not None
    p95 = float(row.stats["p95"] or 0)
    assert p95 > 0
    args = ("report", "s_one", "--db", str(db), "--prices", str(hand), "--format", "json")
    held = run(*args, "--fail-over", f"cost.turn.p95={p95 * 1.01:.8f}",
               "--fail-over", "cost.session.max=$0.05")
    assert held.exit_code == 0, held.stderr
    broke = run(*args, "--fail-over", f"cost.turn.p95={p95 * 0.99:.8f}USD")
    assert broke.exit_code == 1
    assert "cost.turn.p95 = $" in broke.stderr and "budget broken" in broke.stderr
    # an unknown price never passes a cost budget
    with Store.open(db) as s:
        s.insert(session_records("s_three", turns=2, seed=4, tts="acme/voice-9"))
    r = run("report", "s_three", "--db", str(db), "--prices", str(hand),
            "--fail-over", "cost.session.max=100")
    assert r.exit_code == 1 and "no price for" in r.stderr


def test_cost_budget_specs() -> None:
    b = budgets.parse_budget("cost.turn.p95=0.002")
    assert b.figure.unit == "USD" and b.limit == 0.002
    assert budgets.parse_budget("cost.session.max=$0.05").limit == 0.05
    for bad in ("cost.turn.p95=2ms", "e2e.p95=$1", "cost.call.p95=1"):
        with pytest.raises(UsageError):
            budgets.parse_budget(bad)


def test_compare_shows_cost(db: Path, tmp_path: Path) -> None:
    hand = write(tmp_path / "hand.json", HAND)
    r = run("compare", "s_one", "s_two", "--db", str(db), "--format", "json",
            "--prices", str(hand))
    assert r.exit_code == 0, r.stderr
    figures = {f["figure"]: f for f in json.loads(r.stdout)["figures"]}
    assert figures["cost.session"]["p50"]["a"] == pytest.approx(
        hand_llm(2600, 1024, 95) + hand_stt(13.5) + hand_tts(400))
    assert figures["cost.session"]["verdict"] in ("better", "worse", "unclear")
    with Store.open(db) as s:
        s.insert(session_records("s_four", turns=3, seed=5, llm="openai/gpt-4o"))
    r = run("compare", "openai/gpt-4.1-mini", "openai/gpt-4o", "--by", "model", "--db",
            str(db), "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert "cost.model" in {f["figure"] for f in json.loads(r.stdout)["figures"]}


def test_the_session_summary_carries_cost(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.pipeline import SummaryBuilder

    monkeypatch.setenv("LKMETRICS_PRICES", str(write(tmp_path / "hand.json", HAND)))
    b = SummaryBuilder()
    for r in scripted_session():
        b.add(r)
    cost = b.summary()["cost"]
    total = hand_llm(2600, 1024, 95) + hand_stt(13.5) + hand_tts(400)
    assert cost["total"] == pytest.approx(total) and cost["currency"] == "USD"
    assert [t["seq"] for t in cost["turns"]] == [5, 11]
    assert cost["turns"][0]["tts"] == pytest.approx(hand_tts(180))
    # a bad prices file does not stop the session: the summary says what is wrong
    monkeypatch.setenv("LKMETRICS_PRICES", str(write(tmp_path / "bad.json", "{")))
    b = SummaryBuilder()
    b.add(scripted_session()[0])
    assert "not valid JSON" in b.summary()["cost"]["error"]


def test_live_turn_records_carry_their_cost(llm_server: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Through LiveKit's real pipeline: each turn record's cost is what its usage cost, by
    hand from the STT audio and TTS characters LiveKit measured (the LLM runs on loopback:
    free)."""
    import asyncio

    from tests.helpers.sessions import voice_session

    per_minute, per_million = 0.01, 30.0
    monkeypatch.setenv("LKMETRICS_PRICES", str(write(tmp_path / "p.json", {
        "currency": "USD", "prices": [
            {"type": "stt", "model": "fake/scripted", "per_minute": per_minute,
             "source": "test", "date": "2026-01-01"},
            {"type": "tts", "model": "fake/scripted", "per_million_characters": per_million,
             "source": "test", "date": "2026-01-01"},
            {"type": "llm", "model": "test/test-model", "input_per_million_tokens": 2.0,
             "output_per_million_tokens": 8.0, "source": "test", "date": "2026-01-01"}]})))
    from lkmetrics.cost import prices as prices_mod

    prices_mod._DEFAULT.clear()
    records, results, _ = asyncio.run(voice_session(llm_server, ["Hello?", "And then?"]))
    assert all(r.ok for r in results)
    turns = [r for r in records if r["kind"] == "turn"]
    assert len(turns) == 2
    last_seq = 0
    for t in turns:
        between = [r for r in records if last_seq < r["seq"] < t["seq"]]
        audio = sum(r["audio_duration"] for r in between if r["kind"] == "stt")
        chars = sum(r["characters_count"] for r in between if r["kind"] == "tts")
        assert audio > 0 and chars > 0
        cost = t["cost"]
        # the scripted LLM is on loopback, yet not free: priced by its model name
        assert cost["llm"] > 0
        assert cost["stt"] == pytest.approx(audio / 60 * per_minute)
        assert cost["tts"] == pytest.approx(chars / 1e6 * per_million)
        assert cost["total"] == pytest.approx(cost["stt"] + cost["tts"] + cost["llm"])
        last_seq = t["seq"]
    summary = records[-1]
    llms = [r for r in records if r["kind"] == "llm"]
    assert summary["cost"]["llm"] == pytest.approx(sum(
        r["prompt_tokens"] * 2.0 + r["completion_tokens"] * 8.0 for r in llms) / 1e6)
    assert summary["cost"]["total"] == pytest.approx(sum(t["cost"]["total"] for t in turns))
    # report reads these turn costs from the turn records, and the session's from its last
    # usage record
    from tests.helpers.store import write_jsonl

    src = write_jsonl(tmp_path / "live.jsonl", records)
    assert run("import", str(src)).exit_code == 0
    doc = json.loads(run("report", "--format", "json").stdout)
    assert doc["cost"]["total"] == pytest.approx(summary["cost"]["total"])
    (session,) = doc["cost"]["sessions"]
    assert [t["total"] for t in session["turns"]] == pytest.approx(
        [t["cost"]["total"] for t in turns])
