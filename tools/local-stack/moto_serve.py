"""moto_server, with DynamoDB requests applied one at a time.

DynamoDB applies each conditional write atomically: of two writers that
read version 7 and both write "if version = 7", exactly one succeeds.
moto_server serves requests on threads and checks a condition and writes
the item in separate steps, so two concurrent writers can both succeed
(seen here with moto 5.2.5). The pipeline's correctness rests on that
atomicity (leases, versioned updates, idempotency keys), so the local stack
must have it too: this runs moto's own WSGI app exactly as `moto_server`
does, but holds one lock around every DynamoDB request. S3 and the other
services stay concurrent.

Bedrock (model customization), two gaps filled for the tests:
- moto writes job and model times as "2026-11-25 18:17:14"; the API (and
  every AWS SDK but boto3, which guesses) wants ISO 8601, so the Rust SDK
  could not read a job at all. They are rewritten as "...T18:17:14Z".
- moto never moves a job on from InProgress (only StopModelCustomizationJob
  changes it, straight to Stopped). A real job ends by itself, so a test
  can end one: POST /_finetune/bedrock/jobs/{job name} with
  {"status": "Completed" | "Failed" | ..., "failureMessage": "..."}.
  Local-only; nothing like it exists on AWS.

Bedrock serving, which moto lacks altogether: custom model deployments
(Create/Get/List/Delete, tags) and Bedrock Runtime Converse, in the real
wire format, with their local-only knobs and call counters under
/_finetune/bedrock/. See bedrock_serving.py (answered before moto sees the
request: both Bedrock services sign as `bedrock`, and these paths are
theirs alone).

S3 event notifications: moto sends a record without `userIdentity`,
`requestParameters`, `responseElements`, the bucket's `ownerIdentity` and
the object's `sequencer`, which every notification S3 sends carries (the
user guide's "Event message structure") and the Lambda event types
require. They are added, with local values, so the shard worker reads the
notification S3 would send.

Usage: python moto_serve.py -H 127.0.0.1 -p PORT
"""

import argparse
import json
import os
import threading
import time
from datetime import datetime, timezone

from werkzeug.serving import run_simple
import bedrock_serving
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_dynamodb = threading.Lock()

_BEDROCK_HOOK = "/_finetune/bedrock/jobs/"
_MOTO_TIME = "%Y-%m-%d %H:%M:%S"


def _iso(value):
    try:
        parsed = datetime.strptime(value, _MOTO_TIME)
    except (TypeError, ValueError):
        return value
    return parsed.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _patch_bedrock_times():
    from moto.bedrock import models

    for cls, fields in (
        (models.ModelCustomizationJob, ("creation_time", "last_modified_time", "end_time")),
        (models.CustomModel, ("creation_time",)),
    ):
        original = cls.__init__

        def patched(self, *args, __original=original, __fields=fields, **kwargs):
            __original(self, *args, **kwargs)
            for field in __fields:
                setattr(self, field, _iso(getattr(self, field)))

        cls.__init__ = patched


def _bedrock_hook(environ, start_response):
    """Sets a Bedrock job's status, as the service would when it ends."""
    from moto.bedrock.models import bedrock_backends

    name = environ["PATH_INFO"][len(_BEDROCK_HOOK):]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    for account in list(bedrock_backends.keys()):
        for region in list(bedrock_backends[account].keys()):
            jobs = bedrock_backends[account][region].model_customization_jobs
            if name in jobs:
                job = jobs[name]
                job.status = body.get("status", job.status)
                job.failure_message = body.get("failureMessage", job.failure_message)
                job.end_time = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                start_response("200 OK", [("Content-Type", "application/json")])
                return [json.dumps({"jobName": name, "status": job.status}).encode()]
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [json.dumps({"message": f"no job {name}"}).encode()]


def _patch_s3_notifications():
    from moto.s3 import notifications

    original = notifications._get_s3_event
    sequence = iter(range(1, 1 << 62))

    def complete(*args, **kwargs):
        event = original(*args, **kwargs)
        for record in event["Records"]:
            record.setdefault("userIdentity", {"principalId": "AWS:AIDALOCALSTACK"})
            record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
            record.setdefault(
                "responseElements",
                {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"},
            )
            record["s3"]["bucket"].setdefault("ownerIdentity", {"principalId": "LOCALOWNER"})
            record["s3"]["object"].setdefault("sequencer", f"{next(sequence):016X}")
        return event

    notifications._get_s3_event = complete


def _stop_tracking_instances():
    """moto keeps every model object it ever made in a class-level list
    (`instances_tracked`, for its dashboard), so nothing it makes is ever
    freed. DynamoDB's TransactWriteItems deep-copies each table it
    touches (to roll back), and every copied item joins that list: memory
    grows with the table's size times the transactions (the full
    demo-fleet reached 23 GB, 572,500 items alive for 1,446 in the table
    at the CI size). Nothing here uses the dashboard, so objects are made
    untracked and freed when moto drops them."""
    from moto.core.common_models import BaseModel

    def untracked(cls, *args, **kwargs):
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = untracked


def _memory_report(path, every=30.0):
    """Writes what moto holds, every `every` seconds, as JSON lines (local
    diagnosis only: set MOTO_MEMORY_REPORT to a file)."""
    import gc
    import tracemalloc

    traced = os.environ.get("MOTO_TRACEMALLOC") == "1"
    if traced:
        tracemalloc.start(8)

    def s3_stats():
        from moto.s3.models import s3_backends

        out = {}
        for account in list(s3_backends.keys()):
            for region in list(s3_backends[account].keys()):
                for name, bucket in list(s3_backends[account][region].buckets.items()):
                    versions = 0
                    memory = 0
                    for _key, keys in list(bucket.keys.iterlists()):
                        for key in keys:
                            versions += 1
                            buffer = getattr(key, "_value_buffer", None)
                            if buffer is not None and not getattr(buffer, "_rolled", True):
                                memory += key.contentsize or 0
                    out[name] = {"keys": len(bucket.keys), "versions": versions, "bytes_in_memory": memory}
        return out

    def dynamodb_stats():
        from moto.dynamodb.models import dynamodb_backends

        out = {}
        for account in list(dynamodb_backends.keys()):
            for region in list(dynamodb_backends[account].keys()):
                for name, table in list(dynamodb_backends[account][region].tables.items()):
                    out[name] = {"items": sum(1 for _ in table.all_items())}
        return out

    def rss():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024
        return 0

    def loop():
        while True:
            time.sleep(every)
            entry = {"t": time.time(), "rss_mb": rss(), "objects": len(gc.get_objects())}
            for name, stats in (("s3", s3_stats), ("dynamodb", dynamodb_stats)):
                try:
                    entry[name] = stats()
                except Exception as error:  # diagnosis must not stop the server
                    entry[name] = repr(error)
            if os.environ.get("MOTO_MEMORY_TYPES") == "1":
                counts = {}
                for obj in gc.get_objects():
                    kind = type(obj)
                    counts[kind] = counts.get(kind, 0) + 1
                entry["types"] = {
                    f"{kind.__module__}.{kind.__qualname__}": n
                    for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])[:25]
                }
            if traced:
                top = tracemalloc.take_snapshot().statistics("traceback")[:12]
                entry["top"] = [
                    {"mb": round(stat.size / 1e6, 1), "count": stat.count,
                     "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in stat.traceback][-4:]}
                    for stat in top
                ]
            with open(path, "a") as out:
                out.write(json.dumps(entry) + "\n")

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()

    if os.environ.get("MOTO_MEMORY_REPORT"):
        _memory_report(os.environ["MOTO_MEMORY_REPORT"])
    _stop_tracking_instances()
    _patch_bedrock_times()
    _patch_s3_notifications()
    bedrock_serving.patch_moto()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(_BEDROCK_HOOK):
            return _bedrock_hook(environ, start_response)
        served = bedrock_serving.handle(environ, start_response)
        if served is not None:
            return served
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return moto_app(environ, start_response)
        with _dynamodb:
            # Produce the whole response inside the lock: the write happens
            # while the body is generated.
            result = moto_app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return [body]

    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
