"""Checks run before Spark starts, so a misconfigured service ends with one readable line, not a stack trace."""
from __future__ import annotations

import json
import logging
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from conf import ConfigError, PipelineConfig
from interactions import DRY_RUN_QUERY, QUERY
from interactions import documents as docs

TIMEOUT_SECONDS = 10
log = logging.getLogger(__name__)


def check_services(config: PipelineConfig, timeout: float = TIMEOUT_SECONDS, reset: bool = False,
                   dry_run: bool = False) -> None:
    check_kafka(config.kafka.bootstrap_servers, config.kafka.topic, timeout)
    check_mongo(config.mongo.uri, config.mongo.database, timeout)
    check_checkpoint(config, reset, dry_run)
    warn_on_producer_clock(config.kafka.bootstrap_servers, config.kafka.topic, timeout)


def warn_on_producer_clock(bootstrap_servers: str, topic: str, timeout: float) -> str | None:
    """One warning line when the topic's timestamps are the producers' (CreateTime): lateness and the future-skew
    rule then trust every producer's clock. Returns the warning (None when the topic is on the broker's clock)."""
    from contract.topics import CREATE_TIME, TIMESTAMP_TYPE_KEY, TopicConfigUnavailable, topic_timestamp_type

    try:
        clock = topic_timestamp_type(bootstrap_servers, topic, timeout)
    except TopicConfigUnavailable as exc:
        warning = f"cannot tell whose clock topic {topic!r} timestamps with ({exc}); lateness assumes the broker's"
    else:
        if clock != CREATE_TIME:
            return None
        warning = (f"topic {topic!r} has {TIMESTAMP_TYPE_KEY}=CreateTime: lateness is measured on each producer's "
                   f"clock, so a producer whose clock drifts makes its events look on time or late; set "
                   f"{TIMESTAMP_TYPE_KEY}=LogAppendTime on the topic (kafka-configs --alter) for the broker's clock")
    log.warning(warning)
    return warning


IDENTITY_FILE = "pipeline.json"
LAYOUT = "one-pass-1"  # the query and state layout; a checkpoint of another layout cannot be resumed
IDENTITY_DOCUMENT = "identity"


def checkpoint_identity(config: PipelineConfig) -> dict[str, object]:
    """What a checkpoint is bound to: its offsets mean one topic, its state one database's documents, and every
    setting that changes how a record is classified or where it is counted."""
    job = config.job
    return {"layout": LAYOUT, "topic": config.kafka.topic, "database": config.mongo.database,
            "shuffle_partitions": job.shuffle_partitions, "watermark_delay": job.watermark_delay,
            "max_future_skew": job.max_future_skew, "duplicate_window": job.duplicate_window,
            "max_partition_lag": job.max_partition_lag,
            "recent_window": job.recent_window, "recent_slide": job.recent_slide,
            "archive_raw_events": job.archive_raw_events, "top_n_users": job.top_n_users,
            "top_n_items": job.top_n_items, "top_n_users_last_hour": job.top_n_users_last_hour}


def check_checkpoint(config: PipelineConfig, reset: bool = False, dry_run: bool = False) -> None:
    """Bind the checkpoint and the database both ways, or refuse with one line.

    An existing checkpoint must have been made with the same identity and must be the one the database's output
    came from: its Spark query (the id Spark wrote when the query first started), which has planned at least the
    last batch the database holds. A new checkpoint needs a database without this pipeline's output (its batch ids
    would start again at 0, and every guard keyed by batch id would drop them), unless `reset` clears the derived
    collections first. A dry run stores no output and runs on a checkpoint of its own: nothing to bind.
    """
    if dry_run:
        if reset:
            raise ConfigError("--reset clears the database for a new checkpoint, but a dry run stores nothing and "
                              "keeps its own checkpoint: leave out one of --reset and --dry-run")
        dry_run_checkpoint(config)
        return
    directory = Path(config.job.checkpoint_dir)
    marker = directory / IDENTITY_FILE
    with MongoClient(config.mongo.uri, document_class=dict,
                     serverSelectionTimeoutMS=TIMEOUT_SECONDS * 1000) as client:
        db = client[config.mongo.database]
        bound = db[PIPELINE_COLLECTION].find_one({"_id": IDENTITY_DOCUMENT}) or {}
        if marker.exists():
            _resume(db, bound, directory, wanted=checkpoint_identity(config), reset=reset)
        else:
            _start_new(db, bound, directory, wanted=checkpoint_identity(config), reset=reset)


def _resume(db: Database, bound: dict[str, Any], directory: Path, *, wanted: dict[str, object],
            reset: bool) -> None:
    """An existing checkpoint: same identity, and the one the database's output came from (bound on first use)."""
    found = _read_identity(directory, directory / IDENTITY_FILE)
    if reset:
        raise ConfigError(f"--reset clears the database for a new checkpoint, but {directory} already has "
                          "one: use another --checkpoint-dir")
    for key, value in wanted.items():
        if found.get(key) != value:
            raise ConfigError(
                f"checkpoint {directory} was made with {key}={found.get(key)!r}, not {value!r}: resuming it "
                f"would mix results; use another --checkpoint-dir (and a fresh --database) or the old {key}")
    if bound and bound.get("checkpoint_id") != found.get("checkpoint_id"):
        raise ConfigError(f"database {db.name} holds the output of another checkpoint "
                          f"({bound.get('checkpoint_dir')}), not of {directory}")
    if not bound:
        if _has_output(db):
            raise ConfigError(f"database {db.name} holds output that is not from checkpoint "
                              f"{directory}; use a fresh --database")
        _bind(db, found, directory)
        return
    if _has_output(db):
        _check_spark_query(db, bound, directory)


def _check_spark_query(db: Database, bound: dict[str, Any], directory: Path) -> None:
    """The database's output came from the checkpoint's Spark query and no further than the batches it planned.

    Spark keeps the Kafka offsets and the state in `<checkpoint>/interactions`; without them (deleted, or an older
    copy restored) it would start again at batch 0 with empty state while every guard keyed by batch id takes
    batches up to the database's last one for replays. Spark writes `offsets/N` before running batch N, so a job
    that stopped after the sink wrote batch N but before `commits/N` resumes by replaying N.
    """
    last = (db[docs.TOTALS].find_one({"_id": "all"}, {"batch_id": 1}) or {}).get("batch_id", -1)
    spark = directory / QUERY
    way_out = "restore the whole checkpoint, or start again: a new --checkpoint-dir with --reset"
    query_id = spark_query_id(spark)
    if query_id is None:
        raise ConfigError(f"database {db.name} holds output up to batch {last}, but checkpoint {directory} has lost "
                          f"its Spark query ({spark / SPARK_METADATA} is missing): Spark would start again at "
                          f"batch 0 with empty state; {way_out}")
    if bound.get("query_id") not in (None, query_id):
        raise ConfigError(f"checkpoint {directory} holds Spark query {query_id}, but database {db.name} holds the "
                          f"output of Spark query {bound['query_id']}; {way_out}")
    planned = newest_planned_batch(spark)
    if planned is None or planned < last:
        reached = "no batch" if planned is None else f"batches up to {planned}"
        raise ConfigError(f"checkpoint {directory} has planned {reached}, but database {db.name} holds output up to "
                          f"batch {last} (an older copy of the checkpoint?); {way_out}")


def _start_new(db: Database, bound: dict[str, Any], directory: Path, *, wanted: dict[str, object],
               reset: bool) -> None:
    """A new checkpoint: into a database without this pipeline's output, or one `reset` has cleared."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty and is not a checkpoint of this job")
    if bound or _has_output(db):
        if not reset:
            raise ConfigError(
                f"database {db.name} already holds this pipeline's output (from checkpoint "
                f"{bound.get('checkpoint_dir', 'unknown')}); a new checkpoint would count again from batch 0: "
                "resume that checkpoint, use a fresh --database, or pass --reset to clear its derived collections")
        for name in DERIVED_COLLECTIONS:
            db.drop_collection(name)
    identity = {**wanted, "checkpoint_id": uuid.uuid4().hex}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / IDENTITY_FILE).write_text(json.dumps(identity, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the checkpoint directory {directory}: {exc.strerror}") from None
    _bind(db, identity, directory)


PIPELINE_COLLECTION = docs.PIPELINE
# what a reset clears: every collection the job derives from the stream, its health history and its alerts
DERIVED_COLLECTIONS = (*docs.DERIVED, "pipeline_metrics", "alerts")


def _read_identity(directory: Path, marker: Path) -> dict[str, object]:
    try:
        return json.loads(marker.read_text())
    except ValueError:
        raise ConfigError(f"checkpoint {directory} has an unreadable {IDENTITY_FILE}") from None


SPARK_METADATA = "metadata"  # Spark's: {"id": the query's id}, written when the query first starts


def spark_query_id(spark: Path) -> str | None:
    """The id of the Spark query whose checkpoint folder this is; None when it never started (or was deleted)."""
    try:
        text = (spark / SPARK_METADATA).read_text()
    except FileNotFoundError:
        return None
    try:
        return str(json.loads(text.splitlines()[0])["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ConfigError(f"Spark checkpoint {spark} has an unreadable {SPARK_METADATA} file") from None


def newest_planned_batch(spark: Path) -> int | None:
    """The newest batch in the query's offsets log (offsets/N, written before batch N runs); None when none."""
    offsets = spark / "offsets"
    batches = [int(p.name) for p in offsets.iterdir() if p.name.isdigit()] if offsets.is_dir() else []
    return max(batches, default=None)


def bind_query(config: PipelineConfig, query_id: str) -> None:
    """Once the query has started: the database's output is this Spark query's (`query.id`, the id in the
    checkpoint's metadata). Recorded only where the database is bound to this checkpoint (preflight binds it)."""
    directory = Path(config.job.checkpoint_dir)
    marker = directory / IDENTITY_FILE
    if not marker.exists():
        return
    found = _read_identity(directory, marker)
    with MongoClient(config.mongo.uri, document_class=dict,
                     serverSelectionTimeoutMS=TIMEOUT_SECONDS * 1000) as client:
        client[config.mongo.database][PIPELINE_COLLECTION].update_one(
            {"_id": IDENTITY_DOCUMENT, "checkpoint_id": found.get("checkpoint_id")},
            {"$set": {"query_id": query_id}})


def dry_run_checkpoint(config: PipelineConfig) -> Path:
    """A dry run's own checkpoint, beside the real one (`<checkpoint_dir>-dry-run`): a dry run stores nothing, so
    the real checkpoint must never move past records the database did not get. It holds only the dry-run query's
    folder, which every dry run starts afresh; anything else there is refused rather than deleted."""
    real = Path(config.job.checkpoint_dir).resolve()
    directory = Path(f"{real}-dry-run")
    if directory.exists() and (not directory.is_dir()
                               or any(p.name != DRY_RUN_QUERY for p in directory.iterdir())):
        raise ConfigError(f"{directory} is where a dry run keeps its own checkpoint, but it holds something else: "
                          "move it, or use another --checkpoint-dir")
    return directory


def _has_output(db: Database) -> bool:
    totals = db[docs.TOTALS].find_one({"_id": "all"}, {"batch_id": 1}) or {}
    return totals.get("batch_id", -1) >= 0 or db[docs.USER_STATS].find_one({}, {"_id": 1}) is not None


def _bind(db: Database, identity: dict[str, object], directory: Path) -> None:
    db[PIPELINE_COLLECTION].replace_one({"_id": IDENTITY_DOCUMENT}, {
        "checkpoint_id": identity.get("checkpoint_id"), "checkpoint_dir": str(directory.resolve()),
        "settings": {k: v for k, v in identity.items() if k != "checkpoint_id"}}, upsert=True)


def check_kafka(bootstrap_servers: str, topic: str, timeout: float) -> None:
    settings: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "socket.connection.setup.timeout.ms": 5000,
                                "log_level": 0, "logger": _Silent()}
    admin = AdminClient(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConfigError(f"Kafka broker at {bootstrap_servers} unreachable after {timeout:.0f}s "
                          f"({exc.args[0].str() if exc.args else exc})") from None
    if topic not in metadata.topics:
        raise ConfigError(f"Kafka topic {topic!r} does not exist on {bootstrap_servers} "
                          "(the generator creates it: python -m generator)")


def check_mongo(uri: str, database: str, timeout: float) -> None:
    try:
        with MongoClient(uri, document_class=dict, serverSelectionTimeoutMS=int(timeout * 1000)) as client:
            client[database].command("ping")
            client[database].list_collection_names()
    except OperationFailure as exc:
        reason = (exc.details or {}).get("errmsg", exc)
        raise ConfigError(f"MongoDB at {_redacted(uri)} refused access: {_redacted(uri, str(reason))}") from None
    except (ConfigurationError, ValueError) as exc:  # pymongo's parser: InvalidURI, or a port it cannot read
        raise ConfigError(f"MongoDB URI {_redacted(uri)} is not valid: {_redacted(uri, str(exc))} (a user name or "
                          "password with one of :/?#[]@% must be percent-encoded)") from None
    except PyMongoError as exc:
        raise ConfigError(f"MongoDB at {_redacted(uri)} unreachable after {timeout:.0f}s "
                          f"({_redacted(uri, str(exc).split(',')[0])})") from None


# URI options that may carry a secret: tlsCertificateKeyFilePassword, a proxy's or any other *password*, tokens
# (authMechanismProperties holds AWS_SESSION_TOKEN and the like), secrets.
_SECRET_OPTION = re.compile(r"password|secret|token|authmechanismproperties", re.IGNORECASE)


def _redacted(uri: str, text: str | None = None) -> str:
    """`uri` as it may be shown: the user information (user name and password) and the value of every option that
    may carry a secret as ***. With `text` (an error message about `uri`): that text with each of those secrets, as
    written and percent-decoded, as ***.

    The user information ends at the authority's last `@` (RFC 3986; an unescaped `@` in a password is the case this
    must survive). When the authority has none but the rest of the URI has one (a password with an unescaped `/`, `?`
    or `#` ends the authority early), everything up to the URI's last `@` counts as user information: that may hide
    more than the credentials, never less.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:  # not a URI (the configuration refuses those): nothing of it can be shown
        return "***" if text is None else (text.replace(uri, "***") if uri else text)
    parts = urllib.parse.urlsplit(f"//{rest}")
    keys = [option.partition("=")[0] for option in re.split(r"[&;]", parts.query)]
    if "@" in parts.netloc:
        userinfo, _, hosts = parts.netloc.rpartition("@")
        shown, query = hosts + parts.path, parts.query
    elif "@" in parts.path or "@" in parts.fragment or any("@" in key for key in keys):
        userinfo, _, after = rest.rpartition("@")
        shown, _, query = after.partition("?")
    else:
        userinfo, shown, query = "", parts.netloc + parts.path, parts.query
    hidden = [userinfo, userinfo.partition(":")[2]] if userinfo else []
    options = []
    for option in re.split(r"[&;]", query) if query else []:
        key, equals, value = option.partition("=")
        secret = bool(equals and value and _SECRET_OPTION.search(key))
        hidden += [value] if secret else []
        options.append(f"{key}=***" if secret else option)
    if text is None:
        return f"{scheme}://{'***@' if userinfo else ''}{shown}" + (f"?{'&'.join(options)}" if query else "")
    for value in sorted({v for h in hidden for v in (h, urllib.parse.unquote(h)) if v}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


class _Silent:
    """A librdkafka logger that drops everything: an unreachable broker is reported once, as a ConfigError."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass
