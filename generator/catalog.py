"""The simulated world: users and items with Zipf-like popularity, item prices, user home countries.

Everything here is precomputed once (Faker is far too slow to call per event) and derived from the run's base seed
only, so every producer process of a run sees the same prices, countries and popularity ranks.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from faker import Faker

COUNTRY_TABLE_SIZE = 1024  # power of two: a user's country is a table slot picked by a hash of the user number


class ZipfSampler:
    """Draws ranks 0..n-1 with P(rank k) proportional to 1/(k+1)**exponent (exponent 0 = uniform)."""

    def __init__(self, n: int, exponent: float) -> None:
        if n < 1:
            raise ValueError("need at least one rank")
        self.n = n
        self.exponent = exponent
        self._cumulative = list(accumulate((k + 1) ** -exponent for k in range(n)))
        self._total = self._cumulative[-1]

    def share(self, top: int) -> float:
        """Probability mass of the `top` most popular ranks."""
        top = max(0, min(top, self.n))
        return self._cumulative[top - 1] / self._total if top else 0.0

    def bind(self, uniform: Callable[[], float]) -> Callable[[], int]:
        """A fast zero-argument sampler over a given uniform source (the hot loop calls this per event)."""
        cumulative, total, n_minus_1 = self._cumulative, self._total, self.n - 1

        def draw() -> int:
            rank = bisect_right(cumulative, uniform() * total)
            return rank if rank <= n_minus_1 else n_minus_1  # guards uniform()*total rounding onto the last edge

        return draw


def user_id(number: int, users: int) -> str:
    return "u" + str(number).zfill(max(6, len(str(users - 1))))


def item_id(number: int, items: int) -> str:
    return "i" + str(number).zfill(max(5, len(str(items - 1))))


class Catalog:
    """Users and items of one run.

    Popularity rank r (0 = hottest) maps to a user/item number through a seeded bijection, so the hot ones are spread
    over the id space instead of being u000000, u000001, ...
    """

    def __init__(self, users: int, items: int, zipf: float, seed: int) -> None:
        if users < 1 or items < 1:
            raise ValueError("users and items must be >= 1")
        self.users = users
        self.items = items
        self.zipf = zipf
        rng = random.Random(f"catalog/{seed}")
        self._user_step, self._user_offset = _bijection(users, rng)
        self._item_step, self._item_offset = _bijection(items, rng)

        # Items, indexed by popularity rank: id as a JSON string literal and price as a JSON number literal,
        # ready for string formatting in the hot loop.
        self.item_json: list[str] = ['"' + item_id(self.item_number(rank), items) + '"' for rank in range(items)]
        self.item_price: list[str] = []
        gauss = rng.gauss
        for _ in range(items):
            price = math.exp(gauss(3.0, 1.1))  # median ~20, long tail of expensive items
            self.item_price.append("%.2f" % min(max(price, 0.99), 9999.99))

        # Countries: Faker's codes with a Zipf weighting, so a few markets dominate like real traffic.
        faker = Faker()
        faker.seed_instance(seed)
        distinct: list[str] = []
        while len(distinct) < 40:
            code = faker.country_code()
            if code not in distinct:
                distinct.append(code)
        pick = ZipfSampler(len(distinct), 1.0).bind(rng.random)
        self.country_table: list[str] = [distinct[pick()] for _ in range(COUNTRY_TABLE_SIZE)]

    def user_number(self, rank: int) -> int:
        return (rank * self._user_step + self._user_offset) % self.users

    def item_number(self, rank: int) -> int:
        return (rank * self._item_step + self._item_offset) % self.items

    def country_of(self, user_number: int) -> str:
        return self.country_table[((user_number * 2654435761) >> 7) & (COUNTRY_TABLE_SIZE - 1)]


def _bijection(n: int, rng: random.Random) -> tuple[int, int]:
    """(step, offset) with gcd(step, n) == 1, so k -> (k*step + offset) % n permutes 0..n-1."""
    if n == 1:
        return 1, 0
    while True:
        step = rng.randrange(1, max(2, n * 7919))
        if math.gcd(step, n) == 1:
            return step, rng.randrange(n)
