"""python -m generator: flags over conf/pipeline.toml, one or N producer processes, progress, clean shutdown.

Exit codes: 0 done (also after Ctrl-C/SIGTERM, once flushed), 1 broker unreachable or messages not delivered,
2 bad flags or configuration values (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from conf import ConfigError, GeneratorConfig, load_config
from contract.times import parse_instant
from generator.pacing import Burst, Schedule, parse_burst
from generator.producer import (
    BrokerUnreachable,
    KafkaTarget,
    ProducerPlan,
    ProducerTotals,
    RunLength,
    Stop,
    concatenate,
    ensure_topic,
    run_producer,
)
from generator.settings import StreamSettings
from generator.stream import KINDS

log = logging.getLogger("generator")

COMPRESSION = ("none", "lz4", "zstd", "snappy", "gzip")
MAX_PROCESSES = 64
TICK_S = 0.5
DEFAULTS = StreamSettings()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit 2 (argparse's default prints the whole usage block first)."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _rate(text: str) -> float:
    if text.strip().lower() in ("max", "inf", "unlimited"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be events per second or 'max', got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0 (or 'max'), got {text!r}")
    return value


def _burst(text: str) -> Burst:
    try:
        return parse_burst(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_instant(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be ISO-8601 (e.g. 2026-11-28T04:50:00Z) or epoch seconds, got {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must look like KEY=VALUE (a librdkafka setting), got {text!r}")
    return key.strip(), value.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m generator",
                     description="Synthetic user-interaction events (JSON, keyed by user_id) into Kafka. "
                                 "Flags override conf/pipeline.toml and PIPELINE_* environment variables.")
    parser.add_argument("--config", metavar="FILE", help="configuration file (default conf/pipeline.toml)")
    _add_kafka_flags(parser)
    _add_rate_and_length_flags(parser)
    _add_model_flags(parser)
    _add_fault_flags(parser)
    _add_output_flags(parser)
    return parser


def _add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    k = parser.add_argument_group("Kafka")
    k.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="default [kafka] bootstrap_servers")
    k.add_argument("--topic", help="default [kafka] topic")
    k.add_argument("--partitions", type=_positive_int, help="partitions if the topic is created (default [kafka])")
    k.add_argument("--compression", choices=COMPRESSION, default="none", help="producer compression (default none)")
    k.add_argument("--producer-config", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="extra librdkafka producer setting (repeatable)")
    k.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="give up if the broker does not answer within S seconds (default 10)")
    k.add_argument("--flush-timeout", type=_positive_float, default=60.0, metavar="S",
                   help="wait at most S seconds for outstanding deliveries at the end (default 60)")


def _add_rate_and_length_flags(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("rate and length")
    r.add_argument("--rate", type=_rate, metavar="EV_PER_S", help="events/s over all processes, or 'max' "
                                                                  "(default [generator] rate)")
    r.add_argument("--burst", type=_burst, action="append", default=[], metavar="FACTOR:SECONDS[@AFTER]",
                   help="multiply the rate for a while, e.g. 10x:30@60 (repeatable)")
    r.add_argument("--count", type=_non_negative_int, help="stop after this many messages (all processes)")
    r.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    r.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                   help="producer processes, each with its own slice of users, at rate/N (default 1)")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    m = parser.add_argument_group("model")
    m.add_argument("--seed", type=_non_negative_int, help="non-zero: reproducible content (default [generator] "
                                                          "seed; 0 = random, printed at start)")
    m.add_argument("--users", type=_positive_int, help="default [generator] users")
    m.add_argument("--items", type=_positive_int, help="default [generator] items")
    m.add_argument("--zipf", type=_float, default=DEFAULTS.zipf, help=f"popularity exponent (default "
                                                                     f"{DEFAULTS.zipf})")
    m.add_argument("--session-length", type=_float, default=DEFAULTS.session_length,
                   help=f"mean browsing events per session (default {DEFAULTS.session_length:g})")
    m.add_argument("--cart-rate", type=_float, default=DEFAULTS.cart_rate,
                   help=f"P(view is followed by add_to_cart) (default {DEFAULTS.cart_rate:g})")
    m.add_argument("--purchase-rate", type=_float, default=DEFAULTS.purchase_rate,
                   help=f"P(session with a cart purchases it) (default {DEFAULTS.purchase_rate:g})")
    m.add_argument("--concurrent-sessions", type=_positive_int, default=DEFAULTS.concurrent_sessions,
                   help=f"interleaved sessions per process (default {DEFAULTS.concurrent_sessions})")
    m.add_argument("--jitter", type=_float, default=DEFAULTS.jitter, metavar="S",
                   help=f"event time = now - uniform(0, S) (default {DEFAULTS.jitter:g}, at most 5)")
    m.add_argument("--start-time", type=_start_time, metavar="ISO|EPOCH",
                   help="pin event times: start here and advance 1/rate per event (fully reproducible run)")


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    f = parser.add_argument_group("fault injection (fractions of all messages)")
    f.add_argument("--late-ratio", type=_float, default=0.0, help="events stamped --late-by in the past")
    f.add_argument("--late-by", type=_positive_float, default=DEFAULTS.late_by, metavar="S",
                   help=f"how old late events are (default {DEFAULTS.late_by:g} s)")
    f.add_argument("--duplicate-ratio", type=_float, default=0.0, help="resends of a recent event, same id and "
                                                                         "content")
    f.add_argument("--malformed-ratio", type=_float, default=0.0,
                   help="broken JSON, missing fields, wrong types, unknown types, far-future times")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    o = parser.add_argument_group("output")
    o.add_argument("--emit-manifest", metavar="FILE", help="JSON Lines of every acknowledged message "
                                                            "(kind, key, partition, offset, payload)")
    o.add_argument("--stats-json", metavar="FILE", help="write the final totals as JSON")
    o.add_argument("--progress-interval", type=float, default=5.0, metavar="S",
                   help="progress line on stderr every S seconds (0 = off; default 5)")
    o.add_argument("-v", "--verbose", action="store_true", help="also show librdkafka's own log")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOutput:
    """What the run writes besides the messages: the output flags."""

    manifest: str | None = None        # JSON Lines of every acknowledged message
    stats_json: str | None = None      # the final totals
    progress_interval: float = 5.0     # seconds between progress lines on stderr (0 = none)
    verbose: bool = False              # also show librdkafka's own log


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunPlan:
    """The whole run as flags and configuration decide it: what to produce and how fast (settings), where to
    (kafka), until when (length, over all processes), in how many processes, and what to write besides."""

    settings: StreamSettings
    kafka: KafkaTarget
    length: RunLength = RunLength()
    processes: int = 1
    output: RunOutput = RunOutput()

    def producer_plan(self, index: int) -> ProducerPlan:
        """Process `index`'s share of the run: its part of the count, its slice of the users, its manifest."""
        count = None
        if self.length.count is not None:
            count = self.length.count // self.processes + (1 if index < self.length.count % self.processes else 0)
        manifest = self.output.manifest
        return ProducerPlan(settings=self.settings, kafka=self.kafka,
                            length=RunLength(count=count, duration=self.length.duration),
                            process_index=index, processes=self.processes,
                            manifest_path=manifest_part(manifest, index, self.processes) if manifest else None,
                            verbose=self.output.verbose)


def manifest_part(manifest: str, index: int, processes: int) -> str:
    """The file process `index` writes its manifest lines to: the manifest itself, or with several processes a part
    file that is joined into the manifest at the end."""
    return manifest if processes == 1 else f"{manifest}.part{index}"


def parse_args(argv: Sequence[str] | None = None) -> RunPlan:
    """Flags + configuration -> a validated plan; bad input exits 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, overrides={
            "kafka": {"bootstrap_servers": args.bootstrap_servers, "topic": args.topic,
                      "partitions": args.partitions},
            "generator": {"rate": args.rate, "users": args.users, "items": args.items, "seed": args.seed},
        })
        settings = _stream_settings(args, config.generator)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    _check_run_flags(parser, args, config.generator.users)
    kafka = config.kafka
    return RunPlan(
        settings=settings.resolved(),
        kafka=KafkaTarget(bootstrap_servers=kafka.bootstrap_servers, topic=kafka.topic, partitions=kafka.partitions,
                          compression=args.compression, producer_overrides=dict(args.producer_config),
                          connect_timeout=args.connect_timeout, flush_timeout=args.flush_timeout),
        length=RunLength(count=args.count, duration=args.duration),
        processes=args.processes,
        output=RunOutput(manifest=args.emit_manifest, stats_json=args.stats_json,
                         progress_interval=args.progress_interval, verbose=args.verbose))


def _stream_settings(args: argparse.Namespace, gen: GeneratorConfig) -> StreamSettings:
    """The model flags over the configuration's [generator] values; ValueError names the flag at fault."""
    settings = StreamSettings(
        users=gen.users, items=gen.items, zipf=args.zipf, seed=gen.seed, session_length=args.session_length,
        cart_rate=args.cart_rate, purchase_rate=args.purchase_rate,
        concurrent_sessions=args.concurrent_sessions, late_ratio=args.late_ratio,
        duplicate_ratio=args.duplicate_ratio, malformed_ratio=args.malformed_ratio, late_by=args.late_by,
        jitter=args.jitter, start_time=args.start_time, rate=gen.rate, bursts=tuple(args.burst))
    settings.validate()
    return settings


def _check_run_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, users: int) -> None:
    """The flags about the run itself (processes, length, output files); a bad one exits 2 with one line."""
    if args.processes > min(MAX_PROCESSES, users):
        parser.error(f"--processes must be <= {min(MAX_PROCESSES, users)} (and <= --users)")
    if args.count == 0:
        parser.error("--count must be >= 1")
    if args.progress_interval < 0:
        parser.error("--progress-interval must be >= 0")
    if args.rate is not None and math.isinf(args.rate) and args.count is None and args.duration is None:
        parser.error("--rate max needs --count or --duration")
    for flag, path in (("--emit-manifest", args.emit_manifest), ("--stats-json", args.stats_json)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            parser.error(f"{flag}: folder {folder} does not exist or is not writable")


# --- progress -----------------------------------------------------------------------------------------------------

class Progress:
    """Turns running totals into a progress line every `interval` seconds."""

    def __init__(self, interval: float, target_rate: Schedule) -> None:
        self.interval = interval
        self.schedule = target_rate
        self._last_time = time.monotonic()
        self._last_sent = 0
        self._started = self._last_time

    def maybe_report(self, sent: int, acked: int, failed: int, in_flight: int) -> None:
        now = time.monotonic()
        if not self.interval or now - self._last_time < self.interval:
            return
        rate = (sent - self._last_sent) / (now - self._last_time)
        target = self.schedule.rate_at(now - self._started)
        target_text = "max" if math.isinf(target) else f"{target:,.0f}/s"
        log.info("sent %s  acked %s  failed %s  in flight %s  rate %s/s (target %s)", f"{sent:,}", f"{acked:,}",
                 f"{failed:,}", f"{in_flight:,}", f"{rate:,.0f}", target_text)
        self._last_time, self._last_sent = now, sent


# --- processes ----------------------------------------------------------------------------------------------------

SLOT = 2 + 2 * len(KINDS) + 2  # sent, in_flight, acked per kind, failed per kind, elapsed, state


def _publish(slots: Any, index: int, totals: ProducerTotals, state: float) -> None:
    base = index * SLOT
    values = [totals.sent, totals.in_flight, *totals.acked, *totals.failed, totals.elapsed, state]
    slots[base:base + SLOT] = values


def _read(slots: Any, index: int) -> tuple[ProducerTotals, float]:
    values = slots[index * SLOT:(index + 1) * SLOT]
    n = len(KINDS)
    totals = ProducerTotals(sent=int(values[0]), in_flight=int(values[1]), acked=[int(v) for v in values[2:2 + n]],
                            failed=[int(v) for v in values[2 + n:2 + 2 * n]], elapsed=values[2 + 2 * n])
    return totals, values[-1]


READY, RUNNING, FINISHED = 1.0, 2.0, 3.0


def _child_main(plan: ProducerPlan, slots: Any, go: Any, parent_pid: int) -> None:
    """One producer process: waits for the parent's go so all processes start together, runs, publishes totals."""
    stop = Stop()
    # Ctrl-C reaches the whole process group; the parent forwards each signal it gets as one SIGTERM, so a child
    # counts exactly one signal per Ctrl-C (the second one abandons the flush, as in a single process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop.set)
    _configure_logging(plan.verbose)

    def ready() -> None:
        _publish(slots, plan.process_index, ProducerTotals(), READY)
        while not go.wait(0.2):
            if stop.requested or os.getppid() != parent_pid:
                stop.requested = True
                return

    def tick(totals: ProducerTotals) -> None:
        _publish(slots, plan.process_index, totals, RUNNING)
        if os.getppid() != parent_pid:  # the parent died: do not run on forever
            stop.requested = True

    totals = run_producer(plan, stop, on_tick=tick, on_ready=ready)
    if totals.first_error:
        logging.getLogger("generator").warning("process %d: first delivery error: %s", plan.process_index,
                                               totals.first_error)
    _publish(slots, plan.process_index, totals, FINISHED)


def _run_single(plan: RunPlan, stop: Stop) -> tuple[ProducerTotals, bool]:
    progress = Progress(plan.output.progress_interval, Schedule(plan.settings.rate, plan.settings.bursts))

    def tick(totals: ProducerTotals) -> None:
        progress.maybe_report(totals.sent, sum(totals.acked), sum(totals.failed), totals.in_flight)

    totals = run_producer(plan.producer_plan(0), stop, on_tick=tick)
    return totals, True


def _run_many(plan: RunPlan, stop: Stop) -> tuple[ProducerTotals, bool]:
    context = multiprocessing.get_context("spawn")  # never fork a process that has loaded librdkafka
    slots = context.Array("d", SLOT * plan.processes, lock=False)
    go = context.Event()
    children: list[BaseProcess] = [
        context.Process(target=_child_main, name=f"generator-{i}", args=(plan.producer_plan(i), slots, go, os.getpid()))
        for i in range(plan.processes)]
    for child in children:
        child.start()
    forward = _forward_signals(children, stop)
    _start_together(children, slots, go, stop, forward)
    _report_until_done(children, slots, Progress(plan.output.progress_interval,
                                                 Schedule(plan.settings.rate, plan.settings.bursts)))
    ok = _all_finished(children, slots)
    total = _sum_totals([_read(slots, i)[0] for i in range(plan.processes)])
    if plan.output.manifest:
        concatenate([manifest_part(plan.output.manifest, i, plan.processes) for i in range(plan.processes)],
                    plan.output.manifest)
    return total, ok


def _forward_signals(children: list[BaseProcess], stop: Stop) -> Callable[[int, object], None]:
    """Pass each SIGINT/SIGTERM the parent gets on to the children as one SIGTERM; returns the forwarding handler."""
    def forward(signum: int, _frame: object) -> None:
        stop.requested = True  # children decide what a repeated signal means; the parent keeps collecting
        for child in children:
            if child.is_alive() and child.pid:
                try:
                    os.kill(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    if stop.requested:  # a signal arrived before the children existed
        forward(signal.SIGTERM, None)
    return forward


def _start_together(children: list[BaseProcess], slots: Any, go: Any, stop: Stop,
                    forward: Callable[[int, object], None]) -> None:
    """Wait until every process has built its model and producer, then let them all go at once."""
    while not go.is_set():
        states = [_read(slots, i)[1] for i in range(len(children))]
        if all(state >= READY for state in states) or stop.requested:
            go.set()
        elif any(child.exitcode is not None for child in children):
            go.set()  # one died during setup; let the others run into their stop check
            forward(signal.SIGTERM, None)
        else:
            time.sleep(0.02)


def _report_until_done(children: list[BaseProcess], slots: Any, progress: Progress) -> None:
    """Progress over all processes together, until the last one has exited."""
    while any(child.is_alive() for child in children):
        for child in children:
            child.join(TICK_S / len(children))
        parts = [_read(slots, i)[0] for i in range(len(children))]
        progress.maybe_report(sum(t.sent for t in parts), sum(sum(t.acked) for t in parts),
                              sum(sum(t.failed) for t in parts), sum(t.in_flight for t in parts))


def _all_finished(children: list[BaseProcess], slots: Any) -> bool:
    """Did every process exit cleanly after finishing its run? Logs each one that did not."""
    ok = True
    for i, child in enumerate(children):
        if child.exitcode != 0 or _read(slots, i)[1] != FINISHED:
            log.error("producer process %d failed (exit code %s)", i, child.exitcode)
            ok = False
    return ok


def _sum_totals(parts: list[ProducerTotals]) -> ProducerTotals:
    return ProducerTotals(
        sent=sum(t.sent for t in parts), in_flight=sum(t.in_flight for t in parts),
        acked=[sum(t.acked[k] for t in parts) for k in range(len(KINDS))],
        failed=[sum(t.failed[k] for t in parts) for k in range(len(KINDS))],
        elapsed=max(t.elapsed for t in parts))


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("generator: %(message)s"))
    root = logging.getLogger("generator")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    logging.getLogger("generator.librdkafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    _configure_logging(plan.output.verbose)
    stop = Stop()
    signal.signal(signal.SIGINT, stop.set)
    signal.signal(signal.SIGTERM, stop.set)
    kafka = plan.kafka
    try:
        ensure_topic(kafka.bootstrap_servers, kafka.topic, kafka.partitions, kafka.connect_timeout)
    except BrokerUnreachable as exc:
        print(f"generator: error: {exc}", file=sys.stderr)
        return 1
    s = plan.settings
    rate_text = "max" if math.isinf(s.rate) else f"{s.rate:g}/s"
    log.info("producing to topic %s at %s, rate %s%s, %d process%s, seed %d%s", kafka.topic,
             kafka.bootstrap_servers, rate_text,
             "".join(f", burst {b}" for b in s.bursts), plan.processes, "es" if plan.processes > 1 else "",
             s.seed, f", count {plan.length.count:,}" if plan.length.count is not None else "")
    if plan.processes == 1:
        totals, ok = _run_single(plan, stop)
    else:
        totals, ok = _run_many(plan, stop)
    acked, failed = sum(totals.acked), sum(totals.failed)
    per_s = acked / totals.elapsed if totals.elapsed > 0 else 0.0
    by_kind = ", ".join(f"{kind} {totals.acked[i]:,}" for i, kind in enumerate(KINDS))
    log.info("%s in %.1f s: sent %s, acked %s (%s), failed %s, undelivered %s; %s events/s acked; seed %d",
             "stopped" if stop.requested else "done", totals.elapsed, f"{totals.sent:,}", f"{acked:,}", by_kind,
             f"{failed:,}", f"{totals.in_flight:,}", f"{per_s:,.0f}", s.seed)
    ok = ok and failed == 0 and totals.in_flight == 0
    if plan.output.stats_json:
        _write_stats(plan.output.stats_json, plan, totals, interrupted=stop.requested, ok=ok)
    return 0 if ok else 1


def _write_stats(path: str, plan: RunPlan, totals: ProducerTotals, *, interrupted: bool, ok: bool) -> None:
    """The final totals as JSON, for scripts and benchmarks."""
    acked, failed = sum(totals.acked), sum(totals.failed)
    per_s = acked / totals.elapsed if totals.elapsed > 0 else 0.0
    rate = plan.settings.rate
    with open(path, "w") as out:
        json.dump({
            "sent": totals.sent, "acked": acked, "failed": failed, "undelivered": totals.in_flight,
            "by_kind": {kind: {"acked": totals.acked[i], "failed": totals.failed[i]}
                        for i, kind in enumerate(KINDS)},
            "elapsed_s": round(totals.elapsed, 3), "events_per_s": round(per_s, 1),
            "processes": plan.processes, "rate": None if math.isinf(rate) else rate, "seed": plan.settings.seed,
            "topic": plan.kafka.topic, "bootstrap_servers": plan.kafka.bootstrap_servers,
            "interrupted": interrupted, "ok": ok,
        }, out, indent=2)
        out.write("\n")
