#!/usr/bin/env python3
"""`make package`: checks what `sam build` left in .aws-sam/build.

    check.py --arch arm64|x86_64 [--template template.yaml] [--build-dir .aws-sam/build]

What is checked, and why:

- Every function in the template is built with cargo-lambda and its
  `Metadata: BuildProperties: Binary` names a real `[[bin]]` of the
  workspace (`cargo metadata`); the template deploys exactly the binaries
  of the crates under functions/, no more, no fewer.
- Each function's `bootstrap` is there, is a 64-bit ELF executable for the
  architecture asked for (the ELF header's e_machine: 0x3E x86_64, 0xB7
  aarch64), and the template gives the function that architecture (through
  the `Architecture` parameter).
- Each `bootstrap` is within the 8 MiB budget (docs/operations.md, "Start-up
  and size budget").
- The dictionaries layer: the function that sets FINETUNE_DICTIONARY_DIR
  takes a layer whose ContentUri holds every `<encoding>.tokens.zlib` that
  shared/src/dataset/dictionaries.rs reads, at the place the variable names
  (a layer's files are unpacked under /opt), and the layer is compatible
  with the architecture.

Prints a table; on any problem, prints one sentence per problem and exits 1.
Needs PyYAML (the SAM CLI's venv has it) and cargo on PATH.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import yaml

MAX_BYTES = 8 * 1024 * 1024
E_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}
MACHINE_NAME = {0x3E: "x86_64", 0xB7: "arm64", 0x03: "x86 (32-bit)", 0x28: "arm (32-bit)"}
LAYER_ROOT = "/opt"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Ref X` -> {"Ref": "X"})."""


def _cfn_tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)


def resolve(value, parameters):
    """`{"Ref": P}` of a template parameter -> its value; lists element-wise."""
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    return value


def elf_machine(path):
    """(class, e_machine) of an ELF file, or None when it is not one."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    little = header[5] == 1
    machine = int.from_bytes(header[18:20], "little" if little else "big")
    return header[4], machine


def workspace_bins(root):
    """{bin name: (package name, manifest dir relative to root)} of the workspace."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    bins = {}
    for package in json.loads(out)["packages"]:
        manifest_dir = os.path.relpath(os.path.dirname(package["manifest_path"]), root)
        for target in package["targets"]:
            if "bin" in target["kind"]:
                bins[target["name"]] = (package["name"], manifest_dir)
    return bins


def dictionary_files(root):
    """The `<encoding>.tokens.zlib` names the tokenizer reads from the layer."""
    path = os.path.join(root, "shared", "src", "dataset", "dictionaries.rs")
    with open(path, encoding="utf-8") as f:
        names = sorted(set(re.findall(r'"[./]*data/([\w.-]+\.tokens\.zlib)"', f.read())))
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, choices=sorted(E_MACHINE))
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--build-dir", default=".aws-sam/build")
    args = parser.parse_args()

    root = os.path.dirname(os.path.abspath(args.template))
    template = load(args.template)
    built_path = os.path.join(args.build_dir, "template.yaml")
    if not os.path.isfile(built_path):
        print(f"package check: {built_path} is missing: run `sam build` first.", file=sys.stderr)
        return 1
    built = load(built_path)
    problems = []

    parameters = {
        name: p.get("Default") for name, p in template.get("Parameters", {}).items()
    }
    if "Architecture" not in parameters:
        problems.append("template.yaml has no Architecture parameter, so the package can only be built for one architecture.")
    parameters["Architecture"] = args.arch
    globals_fn = template.get("Globals", {}).get("Function", {})
    resources = template["Resources"]
    built_resources = built["Resources"]

    bins = workspace_bins(root)
    function_bins = {
        name for name, (_, manifest_dir) in bins.items() if manifest_dir.startswith("functions" + os.sep)
    }

    functions = {
        name: r for name, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"
    }
    rows = []
    deployed = set()
    for name, resource in sorted(functions.items()):
        props = resource.get("Properties", {})
        metadata = resource.get("Metadata", {})
        binary = metadata.get("BuildProperties", {}).get("Binary")
        verdict = []
        if metadata.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{name} is not built with cargo-lambda (Metadata: BuildMethod: rust-cargolambda).")
        if binary is None:
            problems.append(f"{name} names no binary (Metadata: BuildProperties: Binary).")
        elif binary not in bins:
            problems.append(f"{name}'s Binary {binary!r} is not a [[bin]] of the workspace (cargo metadata lists {', '.join(sorted(bins))}).")
            verdict.append("NO SUCH BIN")
        else:
            deployed.add(binary)

        architectures = resolve(props.get("Architectures", globals_fn.get("Architectures")), parameters)
        if architectures != [args.arch]:
            problems.append(f"{name} is given the architectures {architectures} in the template, not [{args.arch}] (use Architectures: [!Ref Architecture]).")

        bootstrap = os.path.join(args.build_dir, name, "bootstrap")
        size, machine = None, None
        if not os.path.isfile(bootstrap):
            problems.append(f"{bootstrap} is missing: sam build did not build {name}.")
            verdict.append("MISSING")
        else:
            size = os.path.getsize(bootstrap)
            elf = elf_machine(bootstrap)
            if elf is None:
                problems.append(f"{bootstrap} is not an ELF executable.")
                verdict.append("NOT ELF")
            else:
                elf_class, machine = elf
                if elf_class != 2 or machine != E_MACHINE[args.arch]:
                    found = MACHINE_NAME.get(machine, hex(machine))
                    problems.append(f"{bootstrap} is built for {found}, not {args.arch}.")
                    verdict.append("WRONG ARCH")
            if size > MAX_BYTES:
                problems.append(f"{bootstrap} is {size / 2**20:.2f} MiB, over the 8 MiB budget.")
                verdict.append("TOO BIG")
        rows.append((name, binary or "-", MACHINE_NAME.get(machine, "-") if machine else "-",
                     f"{size / 2**20:.2f}" if size is not None else "-", ", ".join(verdict) or "ok"))

    for missing in sorted(function_bins - deployed):
        problems.append(f"the workspace's function binary {missing!r} (functions/) is not deployed by any function in the template.")
    for extra in sorted(deployed - function_bins):
        problems.append(f"the template deploys {extra!r}, which is not a binary of a crate under functions/.")

    layer_rows = []
    expected_files = dictionary_files(root)
    if not expected_files:
        problems.append("no <encoding>.tokens.zlib file names were found in shared/src/dataset/dictionaries.rs.")
    readers = [
        (name, r) for name, r in functions.items()
        if "FINETUNE_DICTIONARY_DIR" in r.get("Properties", {}).get("Environment", {}).get("Variables", {})
    ]
    if not readers:
        problems.append("no function sets FINETUNE_DICTIONARY_DIR, so prepare would look for the vocabularies in /opt without a layer there.")
    for name, resource in readers:
        props = resource["Properties"]
        directory = props["Environment"]["Variables"]["FINETUNE_DICTIONARY_DIR"]
        layers = [l["Ref"] for l in props.get("Layers", []) if isinstance(l, dict) and "Ref" in l]
        layers = [l for l in layers if resources.get(l, {}).get("Type") == "AWS::Serverless::LayerVersion"]
        if not layers:
            problems.append(f"{name} sets FINETUNE_DICTIONARY_DIR={directory} but takes no layer of this template.")
            continue
        if not (directory == LAYER_ROOT or directory.startswith(LAYER_ROOT + "/")):
            problems.append(f"{name} sets FINETUNE_DICTIONARY_DIR={directory}, outside {LAYER_ROOT} where layers are unpacked.")
            continue
        inside = os.path.relpath(directory, LAYER_ROOT)
        for layer in layers:
            content = built_resources.get(layer, {}).get("Properties", {}).get("ContentUri")
            compatible = resolve(resources[layer]["Properties"].get("CompatibleArchitectures"), parameters)
            if compatible is not None and args.arch not in compatible:
                problems.append(f"the layer {layer} is compatible with {compatible}, not {args.arch}.")
            if not isinstance(content, str):
                problems.append(f"the layer {layer} has no local ContentUri in {built_path}.")
                continue
            content_dir = os.path.normpath(os.path.join(args.build_dir, content))
            for file in expected_files:
                path = os.path.normpath(os.path.join(content_dir, inside, file))
                at = os.path.normpath(os.path.join(LAYER_ROOT, inside, file))
                if os.path.isfile(path):
                    layer_rows.append((layer, at, os.path.relpath(path), f"{os.path.getsize(path) / 2**20:.2f}"))
                else:
                    problems.append(f"the layer {layer} has no {os.path.relpath(path)}, so {name} would not find {at}.")

    print(f"sam build, {args.arch}: {args.build_dir}")
    header = ("function", "binary", "arch", "MiB", "verdict")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    if layer_rows:
        print()
        header = ("layer", "read at", "from", "MiB")
        widths = [max(len(str(r[i])) for r in layer_rows + [header]) for i in range(len(header))]
        for row in [header] + layer_rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print()
    if problems:
        for problem in problems:
            print(f"package check failed: {problem}", file=sys.stderr)
        return 1
    print(f"package check: {len(rows)} functions, {args.arch}, each within 8 MiB; the layer holds {', '.join(expected_files)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
