#!/usr/bin/env python3
"""Extract the providers' API schemas the contract tests check against.

The contract tests (tests/it/openai_contract.rs, tests/it/contract_schemas.rs)
need the providers' published API descriptions, offline and inside the
repository: a clone must pass its own tests with nothing beside it. The
published documents are large (OpenAI's is ~2 MB, botocore ships every AWS
service), so this script keeps only the operations the pipeline uses, with
every schema or shape they reference, and writes them to tests/contract/
together with SOURCES.json (where each file came from: repository, path,
commit or version, licence, date) and the sources' licence texts.

Sources, each optional (a provider not given is left as it is):

  --openai PATH     openai/openai-openapi: a clone (work tree or bare git
                    directory; openapi.json is read at --openai-rev, default
                    HEAD) or the openapi.json file itself (then --openai-rev
                    must name the commit it came from).
  --together PATH   togethercomputer/openapi: the same, for openapi.yaml
                    (needs PyYAML, pinned in tools/contract/requirements.txt).
  --botocore        Bedrock from the botocore that this Python imports, or
  --botocore-data DIR  from a botocore package's data/ directory.

Nothing here touches the network. Output is deterministic: the same sources
give byte-identical schema files (only SOURCES.json's `extracted` date moves).

Usage (see `make contract-schemas`):
  python3 tools/contract/extract.py --out tests/contract \\
      --openai ~/src/openai-openapi --together ~/src/together-openapi --botocore
"""

import argparse
import copy
import datetime
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

# What the pipeline uses at each provider. Paths keep this order; every
# schema/shape they reference (transitively) comes along.
OPENAI_FINETUNING = {
    "title": "OpenAI API - fine-tuning subset",
    "what": "files, uploads, fine-tuning jobs/events/checkpoints, models "
    "(list, retrieve, delete) and fine-tuning webhooks",
    "paths": {
        "/files": ["post", "get"],
        "/files/{file_id}": ["get", "delete"],
        "/files/{file_id}/content": ["get"],
        "/uploads": ["post"],
        "/uploads/{upload_id}/parts": ["post"],
        "/uploads/{upload_id}/complete": ["post"],
        "/uploads/{upload_id}/cancel": ["post"],
        "/fine_tuning/jobs": ["post", "get"],
        "/fine_tuning/jobs/{fine_tuning_job_id}": ["get"],
        "/fine_tuning/jobs/{fine_tuning_job_id}/cancel": ["post"],
        "/fine_tuning/jobs/{fine_tuning_job_id}/pause": ["post"],
        "/fine_tuning/jobs/{fine_tuning_job_id}/resume": ["post"],
        "/fine_tuning/jobs/{fine_tuning_job_id}/events": ["get"],
        "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints": ["get"],
        "/models": ["get"],
        "/models/{model}": ["get", "delete"],
    },
    "webhooks": [
        "fine_tuning_job_succeeded",
        "fine_tuning_job_failed",
        "fine_tuning_job_cancelled",
    ],
    # The spec attaches no error responses to these operations; the API
    # answers errors in this envelope all the same.
    "extra_schemas": ["ErrorResponse"],
}
OPENAI_CHAT = {
    "title": "OpenAI API - chat completions subset",
    "what": "POST /chat/completions (create)",
    "paths": {"/chat/completions": ["post"]},
    "webhooks": [],
    "extra_schemas": [
        "ErrorResponse",
        "CreateChatCompletionRequest",
        "CreateChatCompletionResponse",
    ],
}
TOGETHER_FINETUNING = {
    "title": "Together AI API - files, fine-tuning and chat completions subset",
    "what": "files, fine-tunes (create, list, get, delete, cancel, events, "
    "checkpoints, metrics, price estimate, supported models and limits), "
    "the fine-tuned model download, models and chat completions",
    "paths": {
        "/files": ["get"],
        "/files/{id}": ["get", "delete"],
        "/files/{id}/content": ["get"],
        "/files/upload": ["post"],
        "/fine-tunes": ["post", "get"],
        "/fine-tunes/estimate-price": ["post"],
        "/fine-tunes/{id}": ["get", "delete"],
        "/fine-tunes/{id}/events": ["get"],
        "/fine-tunes/{id}/checkpoints": ["get"],
        "/finetune/download": ["get"],
        "/fine-tunes/{id}/cancel": ["post"],
        "/fine-tunes/{id}/metrics": ["get"],
        "/fine-tunes/models/supported": ["get"],
        "/fine-tunes/models/limits": ["get"],
        "/models": ["get"],
        "/chat/completions": ["post"],
    },
    "webhooks": [],
    "extra_schemas": ["ErrorData"],
}
BEDROCK_CUSTOMIZATION = [
    "CreateModelCustomizationJob",
    "GetModelCustomizationJob",
    "ListModelCustomizationJobs",
    "StopModelCustomizationJob",
    "GetCustomModel",
    "ListCustomModels",
    "DeleteCustomModel",
    "CreateCustomModelDeployment",
    "GetCustomModelDeployment",
    "ListCustomModelDeployments",
    "DeleteCustomModelDeployment",
]
BEDROCK_RUNTIME = ["Converse"]

OPENAI_REPO = "https://github.com/openai/openai-openapi"
TOGETHER_REPO = "https://github.com/togethercomputer/openapi"
BOTOCORE_REPO = "https://github.com/boto/botocore"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class ExtractError(Exception):
    """A source that is missing, unreadable, or lacks what the tests need."""


# ---------------------------------------------------------------- sources


def git(git_dir, *args):
    """Run git against a work tree or a bare repository."""
    base = ["git", "-C", git_dir] if os.path.isdir(os.path.join(git_dir, ".git")) else [
        "git",
        "--git-dir",
        git_dir,
    ]
    done = subprocess.run(base + list(args), capture_output=True, check=False)
    if done.returncode != 0:
        raise ExtractError(
            f"git {' '.join(args)} in {git_dir}: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


def read_git_source(path, file_name, rev, repository):
    """The spec text and its provenance, from a clone or from the file itself.

    A clone gives the commit and its date; a bare file cannot say which
    commit it is, so the caller must (`rev`)."""
    if os.path.isdir(path):
        commit = git(path, "rev-parse", f"{rev or 'HEAD'}^{{commit}}").decode().strip()
        text = git(path, "show", f"{commit}:{file_name}")
        date = git(path, "show", "-s", "--format=%cI", commit).decode().strip()
        licence = git(path, "show", f"{commit}:LICENSE").decode()
    elif os.path.isfile(path):
        if not rev:
            raise ExtractError(
                f"{path} is a file: name the {repository} commit it comes from (--*-rev)"
            )
        with open(path, "rb") as f:
            text = f.read()
        commit, date = rev, None
        licence_path = os.path.join(os.path.dirname(os.path.abspath(path)), "LICENSE")
        if not os.path.isfile(licence_path):
            raise ExtractError(f"no LICENSE beside {path}: the copy must carry the source's licence")
        with open(licence_path, encoding="utf-8") as f:
            licence = f.read()
    else:
        raise ExtractError(f"{path}: no such file or directory")
    source = {"repository": repository, "path": file_name, "commit": commit}
    if date:
        source["commit_date"] = date
    return text, source, licence


def spdx_of(licence_text, expected):
    """Check the source's licence is still the one we recorded: a change of
    licence must be looked at by a person before the copy is refreshed."""
    if licence_text is None:
        raise ExtractError(f"found no licence text for a source expected to be {expected}")
    first = licence_text.strip().splitlines()[0] if licence_text.strip() else ""
    if expected == "MIT" and "MIT License" in first:
        return "MIT"
    if expected == "Apache-2.0" and "Apache License" in licence_text[:400]:
        return "Apache-2.0"
    raise ExtractError(f"the source's licence is no longer {expected}: {first!r}")


def load_yaml(text):
    """YAML as JSON would read it: no YAML 1.1 dates or yes/no booleans,
    which OpenAPI (YAML 1.2 / JSON) does not have."""
    try:
        import yaml  # noqa: PLC0415 (only the Together source needs it)
    except ImportError as e:
        raise ExtractError(
            "the Together source is YAML: install tools/contract/requirements.txt"
        ) from e

    class Loader(yaml.SafeLoader):
        pass

    resolvers = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [
            (tag, regexp)
            for tag, regexp in entries
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
        ]
        resolvers[first] = kept
    Loader.yaml_implicit_resolvers = resolvers
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)


# ---------------------------------------------------------------- OpenAPI


def refs_in(value, found):
    """Every `#/components/...` reference in a JSON value (also those in
    discriminator mappings, which are references written as strings)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str):
                found.add(v)
            elif k == "mapping" and isinstance(v, dict):
                found.update(s for s in v.values() if isinstance(s, str) and s.startswith("#/"))
            else:
                refs_in(v, found)
    elif isinstance(value, list):
        for v in value:
            refs_in(v, found)


def normalise_exclusive_bounds(value):
    """OpenAPI 3.0's `exclusiveMinimum: true` beside `minimum: 0`, left in a
    3.1 document, is a schema error for a 2020-12 validator (it wants the
    bound itself there): rewrite it to `exclusiveMinimum: 0`, same meaning.
    Returns how many were rewritten."""
    count = 0
    if isinstance(value, dict):
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(value.get(flag), bool):
                # `true` takes the bound's value in the flag's place; `false`
                # (or `true` with no bound, meaningless in 3.0 too) goes.
                if value[flag] and bound in value:
                    b = value[bound]
                    items = [(k, b if k == flag else v) for k, v in value.items() if k != bound]
                    value.clear()
                    value.update(items)
                else:
                    del value[flag]
                count += 1
        for v in value.values():
            count += normalise_exclusive_bounds(v)
    elif isinstance(value, list):
        for v in value:
            count += normalise_exclusive_bounds(v)
    return count


def openapi_subset(full, selection, source_label):
    """The selected operations and webhooks of an OpenAPI document, with the
    components they reference, transitively."""
    paths = {}
    for path, methods in selection["paths"].items():
        item = full.get("paths", {}).get(path)
        if item is None:
            raise ExtractError(f"{source_label} has no path {path}")
        kept = {k: v for k, v in item.items() if k not in HTTP_METHODS}
        for method in methods:
            if method not in item:
                raise ExtractError(f"{source_label} has no {method.upper()} {path}")
            kept[method] = item[method]
        paths[path] = kept
    webhooks = {}
    for name in selection["webhooks"]:
        if name not in full.get("webhooks", {}):
            raise ExtractError(f"{source_label} has no webhook {name}")
        webhooks[name] = full["webhooks"][name]

    components = full.get("components", {})
    wanted = set()
    refs_in(paths, wanted)
    refs_in(webhooks, wanted)
    wanted.update(f"#/components/schemas/{n}" for n in selection["extra_schemas"])
    done = set()
    while wanted - done:
        ref = sorted(wanted - done)[0]
        done.add(ref)
        parts = ref.split("/")
        if len(parts) != 4 or parts[:2] != ["#", "components"]:
            raise ExtractError(f"{source_label}: unsupported reference {ref}")
        target = components.get(parts[2], {}).get(parts[3])
        if target is None:
            raise ExtractError(f"{source_label}: {ref} does not resolve")
        refs_in(target, wanted)
    out_components = {}
    for kind in components:
        names = sorted(r.split("/")[3] for r in done if r.split("/")[2] == kind)
        if names:
            out_components[kind] = {n: components[kind][n] for n in names}

    ops = [op for item in list(paths.values()) + list(webhooks.values())
           for m, op in item.items() if m in HTTP_METHODS]
    security = full.get("security")
    schemes = set()
    for requirement in (security or []) + [r for op in ops for r in op.get("security", [])]:
        schemes.update(requirement)
    if schemes:
        all_schemes = components.get("securitySchemes", {})
        out_components["securitySchemes"] = {n: all_schemes[n] for n in all_schemes if n in schemes}
    used_tags = {t for op in ops for t in op.get("tags", [])}
    tags = [t for t in full.get("tags", []) if t.get("name") in used_tags]

    doc = {"openapi": full["openapi"], "info": None}
    if "servers" in full:
        doc["servers"] = full["servers"]
    if security is not None:
        doc["security"] = security
    doc["paths"] = paths
    if webhooks:
        doc["webhooks"] = webhooks
    doc["components"] = out_components
    if tags:
        doc["tags"] = tags
    doc = copy.deepcopy(doc)
    return doc, normalise_exclusive_bounds(doc)


def openapi_info(full, selection, source, normalised):
    info = {
        "title": selection["title"],
        "version": full["info"]["version"],
        "description": (
            f"Subset of {source['repository']}@{source['commit'][:12]} {source['path']} "
            f"(info.version {full['info']['version']}) restricted to {selection['what']}, "
            "with every component they reference. Extracted by tools/contract/extract.py; "
            "do not edit by hand (tests/contract/SOURCES.json)."
            + (
                f" Normalised {normalised} OpenAPI-3.0-style boolean exclusiveMinimum/"
                "exclusiveMaximum to the 3.1 numeric form (same meaning)."
                if normalised
                else ""
            )
        ),
    }
    if "license" in full["info"]:
        info["license"] = full["info"]["license"]
    return info


# ---------------------------------------------------------------- botocore


def botocore_source(data_dir):
    """botocore's data directory and version: given, or the importable one."""
    if data_dir is None:
        try:
            import botocore  # noqa: PLC0415
        except ImportError as e:
            raise ExtractError("botocore is not importable: install tools/contract/requirements.txt") from e
        data_dir = os.path.join(os.path.dirname(botocore.__file__), "data")
    init = os.path.join(os.path.dirname(os.path.abspath(data_dir)), "__init__.py")
    version = None
    if os.path.isfile(init):
        m = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", open(init, encoding="utf-8").read(), re.M)
        version = m.group(1) if m else None
    if version is None:
        raise ExtractError(f"{data_dir}: not a botocore package's data directory (no __version__)")
    package = os.path.dirname(os.path.abspath(data_dir))
    licence = notice = None
    site = os.path.dirname(package)
    for entry in sorted(os.listdir(site)):
        if entry.startswith(f"botocore-{version}.") and entry.endswith(("dist-info", "egg-info")):
            for root, _, files in os.walk(os.path.join(site, entry)):
                for f in files:
                    p = os.path.join(root, f)
                    if f.startswith("LICENSE"):
                        licence = open(p, encoding="utf-8").read()
                    elif f.startswith("NOTICE"):
                        notice = open(p, encoding="utf-8").read()
    return data_dir, version, licence, notice


def load_service(data_dir, service):
    versions = sorted(os.listdir(os.path.join(data_dir, service)))
    api_version = versions[-1]
    base = os.path.join(data_dir, service, api_version, "service-2.json")
    for candidate in (base, base + ".gz"):
        if os.path.isfile(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rt", encoding="utf-8") as f:
                return json.load(f), api_version, os.path.basename(candidate)
    raise ExtractError(f"{base}(.gz): not found")


def shape_refs(shape):
    refs = []
    for key in ("member", "key", "value"):
        if key in shape:
            refs.append(shape[key]["shape"])
    for member in shape.get("members", {}).values():
        refs.append(member["shape"])
    return refs


def botocore_subset(model, operations, label):
    ops = {}
    wanted = []
    for name in operations:
        if name not in model["operations"]:
            raise ExtractError(f"{label} has no operation {name}")
        op = model["operations"][name]
        ops[name] = op
        for key in ("input", "output"):
            if key in op:
                wanted.append(op[key]["shape"])
        wanted.extend(e["shape"] for e in op.get("errors", []))
    shapes = set()
    while wanted:
        name = wanted.pop()
        if name in shapes:
            continue
        if name not in model["shapes"]:
            raise ExtractError(f"{label}: shape {name} does not resolve")
        shapes.add(name)
        wanted.extend(shape_refs(model["shapes"][name]))
    return ops, {n: model["shapes"][n] for n in sorted(shapes)}


# ---------------------------------------------------------------- output


def dump(path, doc):
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_licence(out, name, text):
    if text is None:
        return None
    rel = f"LICENSES/{name}"
    os.makedirs(os.path.join(out, "LICENSES"), exist_ok=True)
    with open(os.path.join(out, rel), "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return rel


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/contract)")
    ap.add_argument("--openai", help="openai/openai-openapi clone, or its openapi.json")
    ap.add_argument("--openai-rev", help="commit to read (clone) or that the file is (file)")
    ap.add_argument("--together", help="togethercomputer/openapi clone, or its openapi.yaml")
    ap.add_argument("--together-rev", help="commit to read (clone) or that the file is (file)")
    ap.add_argument("--botocore", action="store_true", help="Bedrock from the importable botocore")
    ap.add_argument("--botocore-data", help="Bedrock from this botocore data/ directory")
    ap.add_argument("--date", help="extraction date to record (default: today, UTC)")
    args = ap.parse_args(argv)
    if not (args.openai or args.together or args.botocore or args.botocore_data):
        ap.error("name at least one source (--openai, --together, --botocore, --botocore-data)")

    out = args.out
    os.makedirs(out, exist_ok=True)
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    sources_path = os.path.join(out, "SOURCES.json")
    if os.path.isfile(sources_path):
        with open(sources_path, encoding="utf-8") as f:
            sources = json.load(f)
    else:
        sources = {}
    sources["about"] = (
        "Where each file in this directory comes from. Written by "
        "tools/contract/extract.py (`make contract-schemas`); do not edit by hand."
    )
    files = sources.setdefault("files", {})

    def record(file_name, doc, source, licence, licence_file, selection):
        files[file_name] = {
            "source": source,
            "license": licence,
            "license_file": licence_file,
            "extracted": date,
            "selection": selection,
            "sha256": dump(os.path.join(out, file_name), doc),
        }
        print(f"{file_name}: from {source['repository']} {source.get('commit') or source.get('version')}")

    if args.openai:
        text, source, licence_text = read_git_source(args.openai, "openapi.json", args.openai_rev, OPENAI_REPO)
        full = json.loads(text)
        source["version"] = full["info"]["version"]
        licence = spdx_of(licence_text, "MIT")
        licence_file = write_licence(out, "openai-openapi.LICENSE", licence_text)
        for file_name, selection in (
            ("openai-finetuning-openapi.json", OPENAI_FINETUNING),
            ("openai-chat-completions-openapi.json", OPENAI_CHAT),
        ):
            doc, normalised = openapi_subset(full, selection, "openai/openai-openapi")
            doc["info"] = openapi_info(full, selection, source, normalised)
            record(file_name, doc, source, licence, licence_file,
                   {"paths": selection["paths"], "webhooks": selection["webhooks"],
                    "extra_schemas": selection["extra_schemas"]})

    if args.together:
        text, source, licence_text = read_git_source(args.together, "openapi.yaml", args.together_rev, TOGETHER_REPO)
        full = load_yaml(text)
        source["version"] = str(full["info"]["version"])
        licence = spdx_of(licence_text, "MIT")
        licence_file = write_licence(out, "togethercomputer-openapi.LICENSE", licence_text)
        doc, normalised = openapi_subset(full, TOGETHER_FINETUNING, "togethercomputer/openapi")
        doc["info"] = openapi_info(full, TOGETHER_FINETUNING, source, normalised)
        record("together-finetuning-openapi.json", doc, source, licence, licence_file,
               {"paths": TOGETHER_FINETUNING["paths"], "extra_schemas": TOGETHER_FINETUNING["extra_schemas"]})

    if args.botocore or args.botocore_data:
        data_dir, version, licence_text, notice = botocore_source(args.botocore_data)
        licence = spdx_of(licence_text, "Apache-2.0")
        licence_file = write_licence(out, "botocore.LICENSE", licence_text)
        write_licence(out, "botocore.NOTICE", notice)
        for file_name, service, operations in (
            ("bedrock-customization-service.json", "bedrock", BEDROCK_CUSTOMIZATION),
            ("bedrock-runtime-converse-service.json", "bedrock-runtime", BEDROCK_RUNTIME),
        ):
            model, api_version, stored_as = load_service(data_dir, service)
            ops, shapes = botocore_subset(model, operations, f"botocore {service}")
            path = f"botocore/data/{service}/{api_version}/{stored_as}"
            doc = {
                "version": model["version"],
                "metadata": model["metadata"],
                "documentation": (
                    f"Subset of {path} (botocore {version}): the operations "
                    f"{', '.join(operations)} with every shape they reference. Extracted by "
                    "tools/contract/extract.py; do not edit by hand (tests/contract/SOURCES.json)."
                ),
                "operations": ops,
                "shapes": shapes,
            }
            source = {"repository": BOTOCORE_REPO, "package": "botocore (PyPI)",
                      "path": path, "version": version}
            record(file_name, doc, source, licence, licence_file, {"operations": operations})

    files_sorted = dict(sorted(files.items()))
    sources["files"] = files_sorted
    with open(sources_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(sources, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ExtractError as e:
        print(f"extract.py: {e}", file=sys.stderr)
        sys.exit(1)
