"""Bedrock custom model deployments and Bedrock Runtime Converse for moto.

moto 5.2.5 trains (model customization jobs, custom models) but cannot
serve: it has no custom model deployments and no Converse. This module adds
both to the local stack in the real wire format (REST-JSON, the shapes of
botocore's bedrock 2023-04-20 and bedrock-runtime 2023-09-30 service
models), so the AWS SDKs talk to them unchanged. `moto_serve.py` hands it
every request first; it answers the paths below and leaves the rest to moto.

Bedrock control plane (signing name `bedrock`):
  POST   /model-customization/custom-model-deployments         Create (202)
  GET    /model-customization/custom-model-deployments         List
  GET    /model-customization/custom-model-deployments/{id}    Get (name or ARN)
  DELETE /model-customization/custom-model-deployments/{id}    Delete
  Tags: moto's own ListTagsForResource/TagResource/UntagResource, which only
  know the ARNs of moto's jobs and models: deployments are added to them.
Bedrock Runtime (signing name `bedrock` too, another host on AWS):
  POST   /model/{modelId}/converse

Deployments
- ARN `arn:aws:bedrock:{region}:{account}:custom-model-deployment/{12 chars}`,
  kept on moto's Bedrock backend of the request's account and region (so
  `/moto-api/reset` clears them with everything else).
- `clientRequestToken`: the same token again answers the same ARN (Bedrock
  "ignores the request, but does not return an error"); the same token with
  another name or model is a ValidationException.
- A second deployment with a taken name: ValidationException (the
  operation declares no ConflictException). An unknown `modelArn`:
  ResourceNotFoundException. A custom model whose customization job has not
  Completed (moto files the model at job creation; on Bedrock it does not
  exist, or is not Active, until then): ValidationException.
- Status: each deployment answers `Creating` to its first Get (the
  `getsWhileCreating` knob, default 1), then `Active` - or `Failed` with a
  `failureMessage` when the model's `failNextDeployment` knob was set when it
  was created. Deterministic: reads, not time. List shows the status as it
  is and does not move it.
- DeleteCustomModel of a model that still has a deployment answers
  ConflictException (delete the deployment first).

Converse (deterministic, so an evaluation shows an improvement for a reason)
- `modelId` is a base model id (`amazon.nova-lite-v1:0`, also a
  foundation-model or inference-profile ARN, `us.`-style profile ids), or a
  custom model deployment ARN. A deployment that does not exist (or was
  deleted) is ResourceNotFoundException; one not Active is
  ValidationException; a custom model ARN itself is ValidationException
  (on demand, a custom model is only served through a deployment).
- Judge convention, checked first, for any model: when the last user
  message holds `[REFERENCE]...[/REFERENCE]`, `[ANSWER A]...[/ANSWER A]` and
  `[ANSWER B]...[/ANSWER B]`, the answer is exactly `A`, `B` or `TIE`: the
  answer with the higher similarity (below) to the reference; equal -> TIE.
  The OpenAI sandbox follows the same marker convention.
- A deployment answers from its custom model's training data: deployment ->
  custom model -> its customization job -> trainingDataConfig.s3Uri, read
  from moto's S3 (`bedrock-conversation-2024` JSONL). Every assistant turn
  of every record is a candidate, keyed by the user text before it in its
  record; the answer is the candidate whose key is most similar to the
  request's user text (all user messages' text and toolResult text,
  joined). Ties go to the first in file order. The knob `quality: "worst"`
  picks the least similar instead (a worse fine-tune, for negative tests).
- Similarity: Jaccard index of the sets of character trigrams of the two
  texts, each lowercased with runs of whitespace made one space and padded
  with one space at each end; two empty texts score 0.
- A base model answers with a fixed polite template quoting the first
  eight words of the last user message.
- `inferenceConfig`: `stopSequences` cut the answer before the first one
  found (stopReason `stop_sequence`); an answer over `maxTokens` is cut to
  it (`max_tokens`); temperature/topP are checked for range and otherwise
  ignored. Tokens are counted as ceil(characters / 4), at least 1.
- A candidate turn holding toolUse blocks is answered as toolUse
  (stopReason `tool_use`) when the request has a toolConfig, else as text.

Local-only endpoints (nothing like them exists on AWS), next to
`moto_serve.py`'s `POST /_finetune/bedrock/jobs/{job name}`:
  POST /_finetune/bedrock/custom-models/{model name or ARN}
       {"quality": "best" | "worst", "failNextDeployment": "message" | null,
        "getsWhileCreating": n}  -> the model's knobs (merged; 404 if unknown)
  GET  /_finetune/bedrock/custom-models/{model name or ARN} -> its knobs
  GET  /_finetune/bedrock/converse-calls            -> {"calls": {modelId: n}}
  GET  /_finetune/bedrock/converse-calls/{modelId}  -> {"modelId", "calls"}
  POST /_finetune/bedrock/quotas/{bucket} {"concurrentJobs": n | null}
  GET  /_finetune/bedrock/quotas/{bucket}  -> {"bucket", "concurrentJobs", "refused"}
       The concurrent-jobs quota (a Service Quotas value on AWS) for jobs
       whose output goes to that bucket: past it, CreateModelCustomizationJob
       answers ServiceQuotaExceededException (400), as Bedrock does.
Knobs are per custom model (not global) because every test shares one moto
server. A Converse call is counted under its modelId as sent when it was
answered (200), i.e. when Bedrock would have billed it.
"""

import base64
import json
import math
import re
import secrets
import string
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

_DEPLOYMENTS = "/model-customization/custom-model-deployments"
_CONVERSE = re.compile(r"^/model/(?P<model>[^/]+)/converse$")
_LOCAL = "/_finetune/bedrock/"
_LOCAL_JOBS = "/_finetune/bedrock/jobs/"

_NAME = re.compile(r"([0-9a-zA-Z][_-]?){1,63}")
_TOKEN = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?")
_BASE_MODEL = re.compile(r"([a-z]{2,4}\.)?[a-z0-9-]{1,63}\.[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63})*")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")

# Bedrock's own wording where it is known.
_MUST_START_WITH_USER = (
    "A conversation must start with a user message. Try again with a "
    "conversation that starts with a user message."
)
_MUST_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make "
    "sure the conversation alternates between user and assistant roles and "
    "try again."
)
_INVALID_MODEL = "The provided model identifier is invalid."

_JUDGE = {
    name: re.compile(rf"\[{re.escape(name)}\](.*?)\[/{re.escape(name)}\]", re.S)
    for name in ("REFERENCE", "ANSWER A", "ANSWER B")
}

# One lock for every piece of state here: requests arrive on threads.
_lock = threading.RLock()
# Knobs by custom model ARN; Converse calls by modelId as sent.
_knobs: dict[str, dict] = {}
_calls: dict[str, int] = {}
# Parsed training files by (bucket, key, etag), most recently used last:
# an evaluation calls often. Bounded: each entry holds a trigram set per
# example, and a fleet of runs each with its own file grew the server
# without end (23 GB at 215 runs of make demo-fleet before the bound).
_training_cache: "OrderedDict[tuple, list]" = OrderedDict()
_TRAINING_CACHE_ENTRIES = 8
# Quotas of concurrent model customization jobs (a Service Quotas value of
# the account on AWS) by the bucket the jobs write their output to: every
# test shares one moto server, each with a bucket of its own. No entry:
# unlimited (so is a null quota). `refused` counts the creations a quota
# turned away.
_quotas: dict[str, dict] = {}


class BedrockError(Exception):
    """An error answered in Bedrock's REST-JSON error format."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _validation(message):
    return BedrockError(400, "ValidationException", message)


def _not_found(message):
    return BedrockError(404, "ResourceNotFoundException", message)


class Deployment:
    def __init__(self, arn, name, model_arn, description, token, fail, gets_while_creating):
        now = _now()
        self.arn = arn
        self.name = name
        self.model_arn = model_arn
        self.description = description
        self.token = token
        self.created_at = now
        self.last_updated_at = now
        self.sequence = next(_sequence)
        self.status = "Creating"
        self.failure_message = None
        self.gets = 0
        self.gets_while_creating = gets_while_creating
        self.fail = fail

    def on_get(self):
        """A Get is how time passes here: after enough of them it settles."""
        self.gets += 1
        if self.status == "Creating" and self.gets > self.gets_while_creating:
            if self.fail is not None:
                self.status = "Failed"
                self.failure_message = self.fail
            else:
                self.status = "Active"
            self.last_updated_at = _now()

    def detail(self):
        body = {
            "customModelDeploymentArn": self.arn,
            "modelDeploymentName": self.name,
            "modelArn": self.model_arn,
            "createdAt": self.created_at,
            "status": self.status,
            "lastUpdatedAt": self.last_updated_at,
        }
        if self.description:
            body["description"] = self.description
        if self.failure_message:
            body["failureMessage"] = self.failure_message
        return body

    def summary(self):
        body = {
            "customModelDeploymentArn": self.arn,
            "customModelDeploymentName": self.name,
            "modelArn": self.model_arn,
            "createdAt": self.created_at,
            "status": self.status,
            "lastUpdatedAt": self.last_updated_at,
        }
        if self.failure_message:
            body["failureMessage"] = self.failure_message
        return body


def _counter():
    n = 0
    while True:
        n += 1
        yield n


_sequence = _counter()


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_time(value, name):
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _validation(f"Value '{value}' at '{name}' is not a valid timestamp.") from None


# ---- moto's state -----------------------------------------------------------


def _backend(account, region):
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[account][region]


def _deployments(backend) -> dict:
    """This backend's deployments by ARN (an attribute moto does not have)."""
    return backend.__dict__.setdefault("finetune_deployments", {})


def patch_moto():
    """Lets moto's tagging see deployment ARNs, refuses to delete a custom
    model that still has a deployment, deletes a model by its ARN as well
    as by its name, and gives a job's output model the ARN of the custom
    model it made."""
    from urllib.parse import unquote

    from moto.bedrock import models

    list_arns = models.BedrockBackend._list_arns

    def _list_arns(self):
        return list_arns(self) + list(_deployments(self).keys())

    models.BedrockBackend._list_arns = _list_arns

    delete_custom_model = models.BedrockBackend.delete_custom_model

    def _delete_custom_model(self, model_identifier):
        # Bedrock takes the model's name or its ARN; moto keys models by
        # name and hands over the last path segment still percent-encoded.
        identifier = unquote(model_identifier)
        model = self.custom_models.get(identifier) or next(
            (m for m in self.custom_models.values() if m.model_arn == identifier), None
        )
        if model is not None:
            model_identifier = model.model_name
            with _lock:
                used = [d.name for d in _deployments(self).values() if d.model_arn == model.model_arn]
            if used:
                from moto.core.exceptions import JsonRESTError

                raise JsonRESTError(
                    "ConflictException",
                    f"The custom model {model_identifier} has deployments ({', '.join(used)}); "
                    "delete them first.",
                )
        return delete_custom_model(self, model_identifier)

    models.BedrockBackend.delete_custom_model = _delete_custom_model

    # moto names a job's output model `{customModelName}-{jobName}`, an ARN
    # no custom model has; on Bedrock a job's `outputModelArn` is the ARN of
    # the custom model it made (what is then deployed or deleted).
    job_init = models.ModelCustomizationJob.__init__

    def _job_init(self, *args, **kwargs):
        job_init(self, *args, **kwargs)
        self.output_model_name = self.custom_model_name
        self.output_model_arn = self.output_model_arn.rsplit("/", 1)[0] + "/" + self.custom_model_name

    models.ModelCustomizationJob.__init__ = _job_init

    # Bedrock refuses a job past the account's concurrent-jobs quota with
    # ServiceQuotaExceededException (HTTP 400, the service model's shape);
    # moto has no quota at all. Set it with POST /_finetune/bedrock/quota.
    create_job = models.BedrockBackend.create_model_customization_job

    def _create_job(self, *args, **kwargs):
        output = kwargs.get("output_data_config") or (args[5] if len(args) > 5 else {})
        bucket = _bucket_of(output.get("s3Uri", ""))
        name = kwargs.get("job_name") or (args[0] if args else None)
        with _lock:
            quota = _quotas.get(bucket)
            # A repeat of an existing job's name is moto's to answer.
            if (
                quota is not None
                and quota["concurrentJobs"] is not None
                and name not in self.model_customization_jobs
            ):
                limit = quota["concurrentJobs"]
                running = sum(
                    1
                    for job in self.model_customization_jobs.values()
                    if job.status == "InProgress"
                    and _bucket_of(job.output_data_config.get("s3Uri", "")) == bucket
                )
                if running >= limit:
                    quota["refused"] += 1
                    from moto.core.exceptions import JsonRESTError

                    raise JsonRESTError(
                        "ServiceQuotaExceededException",
                        f"The number of concurrent model customization jobs ({running}) has "
                        f"reached the account's quota ({limit}). Resubmit your request later.",
                    )
        return create_job(self, *args, **kwargs)

    models.BedrockBackend.create_model_customization_job = _create_job


def _bucket_of(uri):
    """The bucket of an s3:// URI ("" for anything else)."""
    return uri[len("s3://"):].split("/", 1)[0] if uri.startswith("s3://") else ""


def _caller(environ):
    """Account and region of the request, from its SigV4 credential scope."""
    from moto.core import DEFAULT_ACCOUNT_ID

    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return DEFAULT_ACCOUNT_ID, "us-east-1"
    try:
        from moto.iam.models import get_account_id_from

        account = get_account_id_from(match.group(1))
    except Exception:  # noqa: BLE001 - any failure: the default account
        account = DEFAULT_ACCOUNT_ID
    return account, match.group(2)


def _arn_parts(arn):
    """(account, region, resource) of an ARN, or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return parts[4], parts[3], parts[5]


def _find_custom_model(account, region, identifier):
    backend = _backend(account, region)
    for model in backend.custom_models.values():
        if identifier in (model.model_arn, model.model_name):
            return backend, model
    return backend, None


def _find_deployment(backend, identifier):
    deployments = _deployments(backend)
    if identifier in deployments:
        return deployments[identifier]
    for deployment in deployments.values():
        if deployment.name == identifier:
            return deployment
    return None


# ---- request plumbing -------------------------------------------------------


def _path_segments(environ):
    """The request path's segments, each percent-decoded once: an ARN in a
    path is sent encoded (`arn%3Aaws%3A...%2Fabc`), and PATH_INFO has
    already decoded its `/`."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = raw.split("?", 1)[0]
        if raw.startswith("http://") or raw.startswith("https://"):
            raw = "/" + raw.split("/", 3)[3] if raw.count("/") >= 3 else "/"
        return [unquote(s) for s in raw.split("/")[1:]]
    return environ.get("PATH_INFO", "").split("/")[1:]


def _body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise BedrockError(400, "SerializationException", "The request body is not JSON.") from None
    if not isinstance(value, dict):
        raise BedrockError(400, "SerializationException", "The request body is not a JSON object.")
    return value


def _respond(start_response, status, body):
    payload = json.dumps(body).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [payload]


def _respond_error(start_response, error):
    payload = json.dumps({"message": error.message}).encode()
    start_response(
        f"{error.status} {HTTPStatus(error.status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            # As AWS sends it: the code, then the model namespace.
            ("x-amzn-ErrorType", f"{error.code}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ],
    )
    return [payload]


def handle(environ, start_response):
    """Answers the request if it is one of ours; None lets moto have it."""
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    try:
        if path == _DEPLOYMENTS or path.startswith(_DEPLOYMENTS + "/"):
            return _respond(start_response, *_deployment_api(environ, method))
        if method == "POST" and path.startswith("/model/") and path.endswith("/converse"):
            segments = _path_segments(environ)
            if len(segments) == 3 and segments[0] == "model" and segments[2] == "converse":
                return _respond(start_response, 200, _converse(environ, segments[1]))
        if path.startswith(_LOCAL) and not path.startswith(_LOCAL_JOBS):
            return _respond(start_response, *_local(environ, method))
    except BedrockError as error:
        return _respond_error(start_response, error)
    return None


# ---- deployments ------------------------------------------------------------


def _deployment_api(environ, method):
    account, region = _caller(environ)
    segments = _path_segments(environ)
    identifier = "/".join(segments[2:]) if len(segments) > 2 else ""
    with _lock:
        backend = _backend(account, region)
        if not identifier:
            if method == "POST":
                return 202, _create(backend, account, region, _body(environ))
            if method == "GET":
                return 200, _list(backend, parse_qs(environ.get("QUERY_STRING", "")))
        else:
            deployment = _find_deployment(backend, identifier)
            if deployment is None:
                raise _not_found(f"Custom model deployment {identifier} not found.")
            if method == "GET":
                deployment.on_get()
                return 200, deployment.detail()
            if method == "DELETE":
                del _deployments(backend)[deployment.arn]
                backend.tagger.delete_all_tags_for_resource(deployment.arn)
                return 200, {}
    raise BedrockError(405, "UnknownOperationException", f"{method} is not supported here.")


def _create(backend, account, region, body):
    name = body.get("modelDeploymentName")
    model_arn = body.get("modelArn")
    token = body.get("clientRequestToken")
    description = body.get("description")
    tags = body.get("tags") or []
    if not isinstance(name, str) or len(name) > 63 or not _NAME.fullmatch(name):
        raise _validation(
            f"1 validation error detected: Value '{name}' at 'modelDeploymentName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "([0-9a-zA-Z][_-]?){1,63}"
        )
    if not isinstance(model_arn, str) or not model_arn:
        raise _validation("1 validation error detected: Value null at 'modelArn' failed to satisfy constraint: Member must not be null")
    if token is not None and (not isinstance(token, str) or not _TOKEN.fullmatch(token)):
        raise _validation(
            f"1 validation error detected: Value '{token}' at 'clientRequestToken' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?"
        )
    if description is not None and (not isinstance(description, str) or not 1 <= len(description) <= 2048):
        raise _validation("Value at 'description' failed to satisfy constraint: Member must have length between 1 and 2048")
    if not isinstance(tags, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) and isinstance(t.get("value"), str) for t in tags):
        raise _validation("Every tag needs a string key and value.")
    if len(tags) > 200:
        raise BedrockError(400, "TooManyTagsException", "A resource takes at most 200 tags.")

    deployments = _deployments(backend)
    if token:
        for existing in deployments.values():
            if existing.token == token:
                if existing.name == name and existing.model_arn == model_arn:
                    return {"customModelDeploymentArn": existing.arn}
                raise _validation(
                    f"The client request token {token} was already used with other parameters."
                )
    if any(d.name == name for d in deployments.values()):
        raise _validation(f"A custom model deployment named {name} already exists.")

    parts = _arn_parts(model_arn)
    model = None
    if parts and parts[2].startswith("custom-model/"):
        _, model = _find_custom_model(parts[0], parts[1], model_arn)
    if model is None:
        raise _not_found(f"The custom model {model_arn} was not found.")
    job = backend.model_customization_jobs.get(model.job_name)
    if job is not None and job.status != "Completed":
        raise _validation(
            f"The custom model {model_arn} is not Active (its customization job is {job.status}); "
            "a custom model can be deployed once it is Active."
        )

    knobs = _knobs.setdefault(model.model_arn, {})
    fail = knobs.pop("failNextDeployment", None)
    gets = int(knobs.get("getsWhileCreating", 1))
    alphabet = string.ascii_lowercase + string.digits
    ident = "".join(secrets.choice(alphabet) for _ in range(12))
    arn = f"arn:aws:bedrock:{region}:{account}:custom-model-deployment/{ident}"
    deployments[arn] = Deployment(arn, name, model.model_arn, description, token, fail, gets)
    if tags:
        backend.tagger.tag_resource(arn, [{"Key": t["key"], "Value": t["value"]} for t in tags])
    return {"customModelDeploymentArn": arn}


def _list(backend, query):
    def one(name):
        values = query.get(name)
        return values[0] if values else None

    items = list(_deployments(backend).values())
    if (contains := one("nameContains")) is not None:
        items = [d for d in items if contains in d.name]
    if (status := one("statusEquals")) is not None:
        if status not in ("Creating", "Active", "Failed"):
            raise _validation(f"Value '{status}' at 'statusEquals' failed to satisfy constraint: Member must satisfy enum value set: [Creating, Active, Failed]")
        items = [d for d in items if d.status == status]
    if (model := one("modelArnEquals")) is not None:
        items = [d for d in items if d.model_arn == model]
    if (before := one("createdBefore")) is not None:
        limit = _parse_time(before, "createdBefore")
        items = [d for d in items if _parse_time(d.created_at, "createdAt") < limit]
    if (after := one("createdAfter")) is not None:
        limit = _parse_time(after, "createdAfter")
        items = [d for d in items if _parse_time(d.created_at, "createdAt") > limit]
    sort_by = one("sortBy") or "CreationTime"
    if sort_by != "CreationTime":
        raise _validation(f"Value '{sort_by}' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value set: [CreationTime]")
    order = one("sortOrder") or "Descending"
    if order not in ("Ascending", "Descending"):
        raise _validation(f"Value '{order}' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: [Ascending, Descending]")
    items.sort(key=lambda d: d.sequence, reverse=order == "Descending")
    try:
        size = int(one("maxResults") or 100)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise _validation("Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000")
    start = 0
    if (token := one("nextToken")) is not None:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise _validation("The pagination token is invalid.") from None
    page = items[start : start + size]
    body = {"modelDeploymentSummaries": [d.summary() for d in page]}
    if start + size < len(items):
        body["nextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return body


# ---- Converse ---------------------------------------------------------------


def _normalise(text):
    return " " + " ".join(text.lower().split()) + " "


def trigrams(text):
    padded = _normalise(text)
    return {padded[i : i + 3] for i in range(len(padded) - 2)} if padded.strip() else set()


def similarity(a, b):
    """Jaccard index of the character trigram sets of two texts."""
    left, right = (a if isinstance(a, set) else trigrams(a)), (b if isinstance(b, set) else trigrams(b))
    union = left | right
    return len(left & right) / len(union) if union else 0.0


def _text_of(blocks, include_tool_results=True):
    out = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            out.append(block["text"])
        elif include_tool_results and isinstance(block.get("toolResult"), dict):
            for inner in block["toolResult"].get("content") or []:
                if isinstance(inner, dict) and isinstance(inner.get("text"), str):
                    out.append(inner["text"])
                elif isinstance(inner, dict) and "json" in inner:
                    out.append(json.dumps(inner["json"], sort_keys=True))
    return "\n".join(out)


def _tokens(text):
    return max(1, math.ceil(len(text) / 4))


def _validate_messages(body):
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _validation(_MUST_START_WITH_USER)
    uses_tools = False
    previous = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _validation(
                f"1 validation error detected: Value at 'messages.{i + 1}.member.role' failed to "
                "satisfy constraint: Member must satisfy enum value set: [user, assistant]"
            )
        role = message["role"]
        if i == 0 and role != "user":
            raise _validation(_MUST_START_WITH_USER)
        if role == previous:
            raise _validation(_MUST_ALTERNATE)
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _validation(f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again.")
        for j, block in enumerate(content):
            if not isinstance(block, dict) or len(block) != 1:
                raise _validation(f"The ContentBlock object at messages.{i}.content.{j} must set exactly one member.")
            if "text" in block and not str(block["text"]).strip():
                raise _validation(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again.")
            if "toolUse" in block or "toolResult" in block:
                uses_tools = True
    if uses_tools and not body.get("toolConfig"):
        raise _validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise _validation("inferenceConfig must be an object.")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _validation(f"1 validation error detected: Value '{max_tokens}' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise _validation(f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed to satisfy constraint: Member must have value between 0 and 1")
    tool_config = body.get("toolConfig")
    if tool_config is not None and (not isinstance(tool_config, dict) or not tool_config.get("tools")):
        raise _validation("1 validation error detected: Value at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1")
    return messages, config


def _resolve(model_id):
    """("base", id) or ("deployment", Deployment) for a Converse modelId."""
    parts = _arn_parts(model_id)
    if parts is None:
        if _BASE_MODEL.fullmatch(model_id):
            return "base", model_id
        raise _validation(_INVALID_MODEL)
    account, region, resource = parts
    kind, _, rest = resource.partition("/")
    if kind == "custom-model-deployment":
        backend = _backend(account, region)
        deployment = _deployments(backend).get(model_id)
        if deployment is None:
            raise _not_found(f"The custom model deployment {model_id} was not found.")
        if deployment.status != "Active":
            raise _validation(
                f"The custom model deployment {model_id} is {deployment.status}; "
                "it can serve requests once it is Active."
            )
        return "deployment", deployment
    if kind in ("foundation-model", "inference-profile", "application-inference-profile") and rest:
        return "base", rest
    if kind == "custom-model":
        raise _validation(
            "Invocation of a custom model with on-demand throughput isn't supported. "
            "Deploy it (CreateCustomModelDeployment) and use the deployment's ARN."
        )
    raise _validation(_INVALID_MODEL)


def _judge(last_user_text):
    found = {name: pattern.search(last_user_text) for name, pattern in _JUDGE.items()}
    if not all(found.values()):
        return None
    reference = trigrams(found["REFERENCE"].group(1))
    a = similarity(reference, trigrams(found["ANSWER A"].group(1)))
    b = similarity(reference, trigrams(found["ANSWER B"].group(1)))
    if abs(a - b) < 1e-12:
        return "TIE"
    return "A" if a > b else "B"


def _base_answer(last_user_text):
    words = last_user_text.split()[:8]
    quoted = " ".join(words) + (" ..." if len(last_user_text.split()) > 8 else "")
    return (
        f'Thank you for your message about "{quoted}". I would be glad to help. '
        "Could you share a few more details so I can look into it for you?"
    )


def _training_candidates(deployment):
    """(user-text trigrams, assistant content) of every assistant turn in
    the training data of the deployment's custom model."""
    account, region, _ = _arn_parts(deployment.arn)
    backend, model = _find_custom_model(*_arn_parts(deployment.model_arn)[:2], deployment.model_arn)
    if model is None:
        raise BedrockError(424, "ModelErrorException", f"The custom model {deployment.model_arn} no longer exists.")
    job = backend.model_customization_jobs.get(model.job_name)
    config = (job.training_data_config if job is not None else None) or model.training_data_config or {}
    uri = config.get("s3Uri", "")
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise BedrockError(424, "ModelErrorException", f"The training data URI {uri!r} is not an S3 object.")
    bucket, key = uri[5:].split("/", 1)
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    try:
        obj = s3_backends[account][get_partition(region)].get_object(bucket, key)
    except Exception:  # noqa: BLE001 - a missing bucket raises
        obj = None
    if obj is None:
        raise BedrockError(424, "ModelErrorException", f"The training data {uri} is not in S3 (local stack).")
    cache_key = (bucket, key, obj.etag)
    with _lock:
        if cache_key in _training_cache:
            _training_cache.move_to_end(cache_key)
            return _training_cache[cache_key]
    candidates = []
    for line in obj.value.decode("utf-8-sig").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        user_text = []
        for message in record.get("messages") or []:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "user":
                user_text.append(_text_of(message.get("content")))
            elif message.get("role") == "assistant" and message.get("content"):
                candidates.append((trigrams("\n".join(user_text)), message["content"]))
    with _lock:
        _training_cache[cache_key] = candidates
        while len(_training_cache) > _TRAINING_CACHE_ENTRIES:
            _training_cache.popitem(last=False)
    return candidates


def _answer_from_training(deployment, user_text):
    candidates = _training_candidates(deployment)
    if not candidates:
        raise BedrockError(424, "ModelErrorException", "The custom model's training data has no assistant turns.")
    worst = _knobs.get(deployment.model_arn, {}).get("quality") == "worst"
    probe = trigrams(user_text)
    chosen, chosen_score = None, None
    for grams, content in candidates:
        score = similarity(probe, grams)
        better = chosen is None or (score < chosen_score if worst else score > chosen_score)
        if better:
            chosen, chosen_score = content, score
    return chosen


def _apply_limits(text, config):
    stop_reason = "end_turn"
    cut = None
    for sequence in config.get("stopSequences") or []:
        if sequence and (at := text.find(sequence)) >= 0 and (cut is None or at < cut):
            cut = at
    if cut is not None:
        text, stop_reason = text[:cut], "stop_sequence"
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and _tokens(text) > max_tokens:
        text, stop_reason = text[: max_tokens * 4], "max_tokens"
    return text, stop_reason


def _converse(environ, model_id):
    started = time.monotonic()
    body = _body(environ)
    messages, config = _validate_messages(body)
    with _lock:
        kind, target = _resolve(model_id)
        last_user = next(m for m in reversed(messages) if m["role"] == "user")
        last_user_text = _text_of(last_user["content"])
        verdict = _judge(last_user_text)
        content = None
        if verdict is not None:
            text = verdict
        elif kind == "base":
            text = _base_answer(last_user_text)
        else:
            user_text = "\n".join(_text_of(m["content"]) for m in messages if m["role"] == "user")
            content = _answer_from_training(target, user_text)
            text = _text_of(content, include_tool_results=False)
        tool_uses = [b for b in (content or []) if isinstance(b, dict) and "toolUse" in b]
        if tool_uses and body.get("toolConfig"):
            out_blocks = []
            for block in content:
                if "text" in block:
                    out_blocks.append({"text": block["text"]})
                elif "toolUse" in block:
                    use = dict(block["toolUse"])
                    use.setdefault("toolUseId", "tooluse_" + uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(use, sort_keys=True)).hex[:22])
                    use.setdefault("input", {})
                    out_blocks.append({"toolUse": {k: use[k] for k in ("toolUseId", "name", "input") if k in use}})
            stop_reason = "tool_use"
            output_text = json.dumps(out_blocks)
        else:
            if not text and tool_uses:
                text = json.dumps([b["toolUse"] for b in tool_uses], sort_keys=True)
            text, stop_reason = _apply_limits(text, config)
            out_blocks = [{"text": text}]
            output_text = text
        _calls[model_id] = _calls.get(model_id, 0) + 1
    input_text = _text_of(body.get("system")) + "".join(_text_of(m["content"]) for m in messages)
    input_tokens = _tokens(input_text)
    output_tokens = _tokens(output_text)
    max_tokens = config.get("maxTokens")
    if stop_reason == "max_tokens" and max_tokens is not None:
        output_tokens = max_tokens
    return {
        "output": {"message": {"role": "assistant", "content": out_blocks}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": max(1, round((time.monotonic() - started) * 1000))},
    }


# ---- local-only knobs and counters -----------------------------------------


def _local(environ, method):
    segments = _path_segments(environ)[2:]  # after "_finetune", "bedrock"
    if not segments:
        raise _not_found("No such local endpoint.")
    head, rest = segments[0], "/".join(segments[1:])
    with _lock:
        if head == "quotas" and rest and "/" not in rest and method in ("GET", "POST"):
            if method == "POST":
                update = _body(environ)
                unknown = set(update) - {"concurrentJobs"}
                if unknown:
                    raise _validation(f"unknown quota fields: {sorted(unknown)}")
                limit = update.get("concurrentJobs")
                if limit is not None and (
                    not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
                ):
                    raise _validation("concurrentJobs is a whole number of at least 1, or null")
                _quotas.setdefault(rest, {"refused": 0})["concurrentJobs"] = limit
            quota = _quotas.get(rest, {"concurrentJobs": None, "refused": 0})
            return 200, {"bucket": rest, **quota}
        if head == "converse-calls" and method == "GET":
            if rest:
                return 200, {"modelId": rest, "calls": _calls.get(rest, 0)}
            return 200, {"calls": dict(_calls)}
        if head == "custom-models" and rest and method in ("GET", "POST"):
            from moto.bedrock.models import bedrock_backends

            model = None
            for account in list(bedrock_backends.keys()):
                for region in list(bedrock_backends[account].keys()):
                    _, model = _find_custom_model(account, region, rest)
                    if model is not None:
                        break
                if model is not None:
                    break
            if model is None:
                raise _not_found(f"no custom model {rest}")
            knobs = _knobs.setdefault(model.model_arn, {})
            if method == "POST":
                update = _body(environ)
                unknown = set(update) - {"quality", "failNextDeployment", "getsWhileCreating"}
                if unknown:
                    raise _validation(f"unknown knobs: {sorted(unknown)}")
                if update.get("quality") not in (None, "best", "worst"):
                    raise _validation("quality is best or worst")
                for name, value in update.items():
                    if value is None:
                        knobs.pop(name, None)
                    else:
                        knobs[name] = value
            return 200, {"modelArn": model.model_arn, "knobs": dict(knobs)}
    raise _not_found("No such local endpoint.")
