r"""The manifest: one JSON line per message the broker acknowledged, written from the delivery callback.

    {"kind":"valid","key":"u004469","partition":2,"offset":17,"timestamp":1795842000123,"payload":"{\"event_id\":...}"}
    {"kind":"malformed","key":"u000862","partition":0,"offset":5,"payload":"{\"event_id\":\"2","defect":"broken_json"}

kind is valid | duplicate | late | malformed (generator.stream.KINDS); defect only on malformed lines
(generator.faults.DEFECTS). With several producer processes the lines of each process are contiguous, in delivery
order within a process. What a consumer reads back from the topic equals the manifest as a multiset of
(key, payload), and exactly at each (partition, offset).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import NamedTuple


class ManifestRecord(NamedTuple):
    kind: str
    key: str
    partition: int
    offset: int
    payload: str
    defect: str | None
    timestamp: int | None = None   # the broker's timestamp, epoch milliseconds


def read_manifest(path: str | os.PathLike[str]) -> Iterator[ManifestRecord]:
    with open(path) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                yield ManifestRecord(row["kind"], row["key"], row["partition"], row["offset"], row["payload"],
                                     row.get("defect"), row.get("timestamp"))
