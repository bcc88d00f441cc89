"""User sessions as small state machines, interleaved the way concurrent users interleave in a real stream.

Each session runs: login -> browsing (view / click / scroll; a view may be followed by add_to_cart of that item)
-> optionally purchase of every carted item (one event per item) -> logout. So a purchase always follows an
add_to_cart of the same item in the same session, and every session starts with login.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable

from generator.catalog import Catalog, ZipfSampler, user_id
from generator.settings import StreamSettings

# Browsing mix: a new item is viewed, or the current item is clicked / scrolled.
VIEW_SHARE, CLICK_SHARE = 0.5, 0.3          # scroll gets the rest
PLATFORM_WEIGHTS = (("web", 0.5), ("android", 0.3), ("ios", 0.2))
QUANTITY_WEIGHTS = ((1, 0.7), (2, 0.2), (3, 0.07), (5, 0.03))

LOGIN, BROWSE, CHECKOUT, LOGOUT, DONE = range(5)
NO_ITEM = -1


class Session:
    __slots__ = ("user_id", "session_id", "platform", "country", "remaining", "state", "item", "to_cart", "cart")

    def __init__(self, user_id: str, session_id: str, platform: str, country: str, remaining: int) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.platform = platform
        self.country = country
        self.remaining = remaining          # browsing events still to come
        self.state = LOGIN
        self.item = NO_ITEM                 # item rank being looked at
        self.to_cart = NO_ITEM              # item rank whose add_to_cart comes next
        self.cart: list[tuple[int, int]] = []  # (item rank, quantity)


class SessionPool:
    """Draws the next event of the stream from `concurrent_sessions` interleaved sessions.

    `next_event()` returns (interaction_type, item_rank or NO_ITEM, quantity or 0, session). Users come from this
    producer's slice of the population (ranks index, index + processes, ...) so parallel producers never share a
    user and per-user ordering stays within one producer.
    """

    def __init__(self, settings: StreamSettings, catalog: Catalog, rng: random.Random, *, session_prefix: str,
                 process_index: int = 0, processes: int = 1) -> None:
        if not 0 <= process_index < processes <= settings.users:
            raise ValueError("need 0 <= process_index < processes <= users")
        self._rng = rng
        self._random = rng.random
        self._catalog = catalog
        self._process_index = process_index
        self._processes = processes
        slice_size = len(range(process_index, settings.users, processes))
        self._draw_user = ZipfSampler(slice_size, settings.zipf).bind(rng.random)
        self.draw_item: Callable[[], int] = ZipfSampler(settings.items, settings.zipf).bind(rng.random)
        self._cart_rate = settings.cart_rate
        self._purchase_rate = settings.purchase_rate
        self._browse_mean = settings.session_length - 1.0
        self._slots: list[Session | None] = [None] * settings.concurrent_sessions
        self._session_prefix = session_prefix
        self._sessions_started = 0
        self._platforms = _weighted_table([p for p, _ in PLATFORM_WEIGHTS], [w for _, w in PLATFORM_WEIGHTS])
        self._quantities = _weighted_table([q for q, _ in QUANTITY_WEIGHTS], [w for _, w in QUANTITY_WEIGHTS])

    @property
    def sessions_started(self) -> int:
        return self._sessions_started

    def draw_user_id(self) -> str:
        """A user of this producer's slice, by popularity (also used for detached, malformed events)."""
        number = self._catalog.user_number(self._draw_user() * self._processes + self._process_index)
        return user_id(number, self._catalog.users)

    def _new_session(self) -> Session:
        rank = self._draw_user() * self._processes + self._process_index
        number = self._catalog.user_number(rank)
        random_ = self._random
        remaining = 1 + int(-math.log(1.0 - random_()) * self._browse_mean)
        session_id = "%s%010x" % (self._session_prefix, self._sessions_started)
        session = Session(user_id(number, self._catalog.users), session_id, self._platforms[int(random_() * 100)],
                          self._catalog.country_of(number), remaining)
        self._sessions_started += 1
        return session

    def next_event(self) -> tuple[str, int, int, Session]:
        random_ = self._random
        slots = self._slots
        slot = int(random_() * len(slots))
        session = slots[slot]
        if session is None or session.state == DONE:
            session = slots[slot] = self._new_session()
        state = session.state
        if state == BROWSE:
            if session.to_cart != NO_ITEM:
                item, session.to_cart = session.to_cart, NO_ITEM
                quantity = self._quantities[int(random_() * 100)]
                session.cart.append((item, quantity))
                return "add_to_cart", item, quantity, session
            if session.remaining > 0:
                session.remaining -= 1
                u = random_()
                if u < VIEW_SHARE or session.item == NO_ITEM:
                    item = session.item = self.draw_item()
                    if random_() < self._cart_rate:
                        session.to_cart = item
                    return "view", item, 0, session
                return ("click" if u < VIEW_SHARE + CLICK_SHARE else "scroll"), session.item, 0, session
            if session.cart and random_() < self._purchase_rate:
                state = session.state = CHECKOUT
            else:
                session.state = DONE
                return "logout", NO_ITEM, 0, session
        if state == CHECKOUT:
            item, quantity = session.cart.pop(0)
            if not session.cart:
                session.state = LOGOUT
            return "purchase", item, quantity, session
        if state == LOGIN:
            session.state = BROWSE
            return "login", NO_ITEM, 0, session
        session.state = DONE  # LOGOUT
        return "logout", NO_ITEM, 0, session


def _weighted_table(values: list, weights: list[float], size: int = 100) -> list:
    """A lookup table of `size` slots filled in proportion to the weights: table[int(random() * size)] samples."""
    total = sum(weights)
    table: list = []
    for value, weight in zip(values, weights, strict=True):
        table.extend([value] * round(weight / total * size))
    while len(table) < size:
        table.append(values[0])
    return table[:size]
