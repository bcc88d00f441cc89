"""The event model without Kafka: distributions, session funnels, reproducibility, fault injection, the contract."""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import math
import re
import time

import pytest

from contract.events import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS
from contract.validation import event_time, invalid_reason
from generator import StreamSettings, generate_events, generate_messages
from generator.catalog import ZipfSampler
from generator.faults import DEFECTS

EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")  # exactly what the generator writes
MAX_FUTURE_SKEW = dt.timedelta(hours=1)
FAULTY = StreamSettings(seed=11, late_ratio=0.05, duplicate_ratio=0.03, malformed_ratio=0.02)


@pytest.fixture(scope="module")
def faulty_messages():
    return generate_messages(60_000, FAULTY, now=time.time())


def parsed(messages, kinds=("valid", "late")):
    return [json.loads(m.payload) for m in messages if m.kind in kinds]


def invalid_when_received_at(payload, now):
    """The contract's reference validator on a payload the broker received at `now` (epoch seconds)."""
    return invalid_reason(payload, dt.datetime.fromtimestamp(now, dt.UTC), MAX_FUTURE_SKEW)


def written_time(text):
    """An event time as the generator writes it (exactly YYYY-MM-DDTHH:MM:SS.mmmZ), read back as epoch seconds."""
    assert EVENT_TIME.match(text), text
    when = event_time(text)
    assert when is not None, text
    return when.timestamp()


def test_top_one_percent_of_users_get_a_large_share_of_events():
    events = generate_events(50_000, seed=3, users=10_000)
    per_user = collections.Counter(e["user_id"] for e in events)
    top = sum(count for _, count in per_user.most_common(100))
    assert top / len(events) > 0.4  # a uniform population gives ~1-10 % here


def test_zipf_exponent_zero_is_uniform_and_one_is_skewed():
    assert ZipfSampler(1000, 0.0).share(10) == pytest.approx(0.01)
    assert ZipfSampler(1000, 1.0).share(10) > 0.35  # H(10)/H(1000) = 2.93/7.49


def test_hot_items_are_viewed_most():
    events = generate_events(30_000, seed=4, items=2_000)
    per_item = collections.Counter(e["item_id"] for e in events if e["interaction_type"] == "view")
    top = sum(count for _, count in per_item.most_common(20))
    assert top / sum(per_item.values()) > 0.3


def test_every_session_starts_with_login_and_nothing_follows_logout(faulty_messages):
    by_session = collections.defaultdict(list)
    for event in parsed(faulty_messages):
        by_session[event["session_id"]].append(event["interaction_type"])
    assert len(by_session) > 1000
    for session, kinds in by_session.items():
        assert kinds[0] == "login", session
        assert "login" not in kinds[1:], session
        if "logout" in kinds:
            assert kinds.index("logout") == len(kinds) - 1, session


def test_no_purchase_without_prior_add_to_cart_of_the_same_item_in_the_same_session(faulty_messages):
    carted: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    purchases = 0
    for event in parsed(faulty_messages):
        key = (event["session_id"], event["item_id"])
        if event["interaction_type"] == "add_to_cart":
            carted[key][event["price"]] += 1
        elif event["interaction_type"] == "purchase":
            purchases += 1
            assert carted[key][event["price"]] > 0, f"purchase without add_to_cart: {event}"
            carted[key][event["price"]] -= 1
    assert purchases > 300


def test_funnel_rates_shape_the_stream():
    def share(kind, **settings):
        events = generate_events(20_000, seed=5, **settings)
        return sum(e["interaction_type"] == kind for e in events) / len(events)

    assert share("add_to_cart", cart_rate=0.0) == 0
    assert share("purchase", purchase_rate=0.0) == 0
    assert share("add_to_cart", cart_rate=0.5) > 2 * share("add_to_cart", cart_rate=0.1)
    assert share("login", session_length=4) > 2 * share("login", session_length=20)


def test_same_seed_gives_the_same_content_apart_from_event_times():
    def without_times(seed):
        rows = []
        for m in generate_messages(5_000, dataclasses.replace(FAULTY, seed=seed)):
            rows.append((m.kind, m.key, re.sub(r'"event_time":("[^"]*"?|\d+)', "", m.payload), m.defect))
        return rows

    assert without_times(21) == without_times(21)
    assert without_times(21) != without_times(22)


def test_pinned_start_time_makes_runs_identical_and_advances_one_over_rate_per_event():
    settings = StreamSettings(seed=8, start_time=1_800_000_000.0, rate=1000, jitter=0.0)
    first, second = generate_messages(3_000, settings), generate_messages(3_000, settings)
    assert first == second
    times = [written_time(json.loads(m.payload)["event_time"]) for m in first]
    assert times[0] == 1_800_000_000.0
    assert times[2_999] == pytest.approx(1_800_000_000.0 + 2.999, abs=1e-6)


def test_processes_get_disjoint_users_and_event_ids():
    settings = StreamSettings(seed=9, users=1_000)
    slices = [generate_messages(5_000, settings, process_index=i, processes=3) for i in range(3)]
    users = [{m.key for m in s} for s in slices]
    ids = [{json.loads(m.payload)["event_id"] for m in s} for s in slices]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not users[a] & users[b]
            assert not ids[a] & ids[b]


def test_injection_ratios_hold(faulty_messages):
    kinds = collections.Counter(m.kind for m in faulty_messages)
    n = len(faulty_messages)
    assert kinds["late"] / n == pytest.approx(0.05, abs=0.005)
    assert kinds["duplicate"] / n == pytest.approx(0.03, abs=0.005)
    assert kinds["malformed"] / n == pytest.approx(0.02, abs=0.005)


def test_duplicates_resend_an_earlier_valid_message_unchanged(faulty_messages):
    seen_valid = set()
    for m in faulty_messages:
        if m.kind == "valid":
            seen_valid.add((m.key, m.payload))
        elif m.kind == "duplicate":
            assert (m.key, m.payload) in seen_valid
    ids = collections.Counter(e["event_id"] for e in parsed(faulty_messages))
    assert max(ids.values()) == 1  # only duplicates repeat an event_id


def test_valid_events_match_the_schema_contract(faulty_messages):
    now = time.time()
    field_names = set(FIELD_TYPES)
    for m in faulty_messages[:20_000]:
        if m.kind not in ("valid", "late", "duplicate"):
            continue
        event = json.loads(m.payload)
        assert set(event) == field_names
        assert invalid_when_received_at(m.payload, now) is None, m.payload
        assert m.key == event["user_id"]
        for name in REQUIRED_FIELDS:
            assert isinstance(event[name], str) and event[name]
        assert event["interaction_type"] in INTERACTION_TYPES
        assert event["platform"] in PLATFORMS
        # What the generator writes, stricter than the contract: event times exactly to the millisecond in UTC, a
        # country on every event (an ISO 3166 alpha-2 code), prices above zero, quantities of at least one.
        assert EVENT_TIME.match(event["event_time"])
        assert re.fullmatch(r"[A-Z]{2}", event["country"])
        if event["interaction_type"] in ITEM_INTERACTIONS:
            assert isinstance(event["item_id"], str) and event["item_id"]
        else:
            assert event["item_id"] is None
        if event["interaction_type"] in ("add_to_cart", "purchase"):
            assert isinstance(event["price"], float) and math.isfinite(event["price"]) and event["price"] > 0
            assert type(event["quantity"]) is int and event["quantity"] >= 1
        else:
            assert event["price"] is None and event["quantity"] is None


def test_every_interaction_type_and_platform_occurs(faulty_messages):
    events = parsed(faulty_messages)
    assert {e["interaction_type"] for e in events} == set(INTERACTION_TYPES)
    assert {e["platform"] for e in events} == set(PLATFORMS)


def test_malformed_messages_really_break_the_contract_in_every_way(faulty_messages):
    now = time.time()
    malformed = [m for m in faulty_messages if m.kind == "malformed"]
    assert {m.defect for m in malformed} == set(DEFECTS)
    for m in malformed:
        assert invalid_when_received_at(m.payload, now) is not None, (m.defect, m.payload)
        if m.defect == "broken_json":
            with pytest.raises(ValueError):
                json.loads(m.payload)


def test_event_times_are_close_to_now_and_late_ones_an_hour_old(faulty_messages):
    now = time.time()
    fresh = StreamSettings(seed=12, late_ratio=0.1, jitter=0.5)
    for m in generate_messages(5_000, fresh, now=now):
        age = now - written_time(json.loads(m.payload)["event_time"])
        if m.kind == "late":
            assert 3600 <= age <= 3600 + 0.5 + 0.001
        else:
            assert 0 <= age <= 0.5 + 0.001


def test_add_to_cart_and_purchase_carry_the_items_price():
    prices = collections.defaultdict(set)
    for event in generate_events(20_000, seed=13):
        if event["price"] is not None:
            prices[event["item_id"]].add(event["price"])
    assert prices and all(len(p) == 1 for p in prices.values())
