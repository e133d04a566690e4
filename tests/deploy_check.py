#!/usr/bin/env python3
"""Checks docker-compose.yml and the Dockerfile without a Docker engine
(tests/integration/test_compose.sh runs it; a test helper, not product code).

docker-compose.yml: the services of the stack exist, long-running ones have
health checks, Kafka runs in KRaft mode from the official image, the topics
are created (recommendations compacted), every host port is documented in the
file's header, Prometheus scrapes the port recstream serves, files mounted
from the repository exist, and every recstream flag used is one that
`recstream COMMAND --help` lists.

Dockerfile: instructions are known and continuation lines close, stages are
FROM debian:12 (multi-stage), COPY --from names an earlier stage, the final
stage runs as a non-root USER, its packages provide every shared library the
recstream binary needs, and the build stage's packages are in
scripts/install-deps.sh.

Usage: deploy_check.py REPO_DIR RECSTREAM_BINARY
"""
import os
import re
import shlex
import subprocess
import sys

import yaml

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


# ==== docker-compose.yml ====

SERVICES = ["kafka", "kafka-init", "schema-registry", "model-init", "recstream",
            "prometheus", "grafana"]


def help_flags(binary, command):
    out = subprocess.run([binary, command, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--([a-z][a-z0-9-]*)", out))


def recstream_invocations(svc):
    """Argument lists of recstream commands a service runs: its command when
    it runs the image's entrypoint, or 'recstream ...' lines of a shell script."""
    cmd = svc.get("command")
    if svc.get("entrypoint") is None and isinstance(cmd, list):
        return [[str(a) for a in cmd]]
    script = "\n".join(cmd) if isinstance(cmd, list) else str(cmd or "")
    found = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("recstream "):
            found.append(shlex.split(line)[1:])
    return found


def check_flags(binary, where, args):
    if not check(args, "%s: no recstream command" % where):
        return
    known = help_flags(binary, args[0])
    check(known, "%s: `recstream %s --help` lists no flags" % (where, args[0]))
    for a in args[1:]:
        if a.startswith("--"):
            name = a[2:].split("=", 1)[0]
            check(name in known, "%s: recstream %s has no flag --%s" % (where, args[0], name))


def flag_value(args, flag):
    return args[args.index(flag) + 1] if flag in args else None


def check_compose(repo, binary):
    path = repo + "/docker-compose.yml"
    text = open(path).read()
    doc = yaml.safe_load(text)
    services = doc.get("services", {})
    for name in SERVICES:
        check(name in services, "compose: no service %s" % name)
    for name, svc in services.items():
        one_shot = str(svc.get("restart", "")) == "no"
        check(one_shot or "healthcheck" in svc, "compose: %s has no healthcheck" % name)
        for vol in svc.get("volumes", []):
            src = str(vol).split(":")[0]
            if src.startswith("./"):
                check(os.path.exists(repo + "/" + src[2:]),
                      "compose: %s mounts %s, which is not in the repository" % (name, src))
        header = text.split("services:")[0]
        for port in svc.get("ports", []):
            host = str(port).split(":")[-2]
            check(re.search(r"^#\s+%s\b" % host, header, re.M),
                  "compose: host port %s of %s is not documented in the header" % (host, name))
    kafka = services.get("kafka", {})
    env = kafka.get("environment", {})
    check(str(kafka.get("image", "")).startswith("apache/kafka"), "compose: kafka not apache/kafka")
    check("controller" in str(env.get("KAFKA_PROCESS_ROLES", "")), "compose: kafka not KRaft")
    check("KAFKA_CONTROLLER_QUORUM_VOTERS" in env, "compose: no controller quorum")
    check(re.fullmatch(r"[A-Za-z0-9_-]{22}", str(env.get("CLUSTER_ID", ""))),
          "compose: CLUSTER_ID is not a base64url UUID (kafka-storage.sh random-uuid)")
    check("cp-schema-registry" in str(services.get("schema-registry", {}).get("image", "")),
          "compose: schema-registry image")
    init = "\n".join(services.get("kafka-init", {}).get("command", []))
    for topic in ["events", "recommendations", "events.dlq"]:
        check(re.search(r"--topic %s\s" % re.escape(topic), init),
              "compose: kafka-init does not create %s" % topic)
    check(re.search(r"--topic recommendations .*cleanup.policy=compact", init),
          "compose: recommendations is not compacted")
    for name, svc in services.items():
        for args in recstream_invocations(svc) if "recstream" in str(svc.get("image", "")) else []:
            check_flags(binary, "compose " + name, args)
    run = recstream_invocations(services.get("recstream", {}))
    if run:
        port = flag_value(run[0], "--metrics-port")
        check(flag_value(run[0], "--metrics-bind") == "0.0.0.0",
              "compose: recstream metrics must bind 0.0.0.0 to be scraped")
        prom = open(repo + "/deploy/prometheus.yml").read()
        check(port and "recstream:%s" % port in prom,
              "compose: prometheus.yml does not scrape recstream:%s" % port)
        check(flag_value(run[0], "--schema-registry"), "compose: recstream without a registry")


# ==== Dockerfile ====

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
                "SHELL", "MAINTAINER"}


def dockerfile_instructions(text):
    """(instruction, arguments) pairs, continuation lines joined."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if cur and line.startswith("#"):
            continue
        cur += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    check(not cur, "Dockerfile: ends inside a continued line")
    return out


def apt_packages(run_args):
    m = re.search(r"apt-get install(.*?)(&&|$)", run_args)
    return [w for w in (m.group(1).split() if m else []) if not w.startswith("-") and w != "\\"]


def needed_packages(binary):
    """Debian packages holding the shared libraries recstream links directly."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    pkgs = set()
    for lib in re.findall(r"Shared library: \[(.+?)\]", dyn):
        # libc and friends are in every image; sanitizer runtimes only in test builds
        if re.match(r"lib(c|m|gcc_s|stdc\+\+|pthread|dl|asan|ubsan|lsan|tsan)\.so", lib):
            continue
        res = subprocess.run(["dpkg", "-S", "*/" + lib], capture_output=True, text=True)
        if res.returncode == 0:
            pkgs.add(res.stdout.split(":")[0])
    return pkgs


def check_dockerfile(repo, binary):
    ins = dockerfile_instructions(open(repo + "/Dockerfile").read())
    stages, stage_pkgs, user = [], {}, None
    for word, args in ins:
        check(word in INSTRUCTIONS, "Dockerfile: unknown instruction %s" % word)
        if word == "FROM":
            parts = args.split()
            check(parts and re.match(r"debian:12(-slim)?$", parts[0]),
                  "Dockerfile: stage base %s is not debian:12" % (parts[:1] or ["?"])[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(name)
            stage_pkgs[name] = []
            user = None
        elif not check(stages, "Dockerfile: %s before FROM" % word):
            continue
        elif word == "RUN":
            stage_pkgs[stages[-1]] += apt_packages(args)
        elif word == "USER":
            user = args.split(":")[0]
        elif word == "COPY":
            m = re.search(r"--from=(\S+)", args)
            check(not m or m.group(1) in stages[:-1],
                  "Dockerfile: COPY --from=%s names no earlier stage" % (m and m.group(1)))
    check(len(stages) >= 2, "Dockerfile: not multi-stage")
    check(user not in (None, "root", "0"), "Dockerfile: the final stage runs as root")
    check(any(w == "ENTRYPOINT" for w, _ in ins), "Dockerfile: no ENTRYPOINT")
    if not stages:
        return
    final = set(stage_pkgs[stages[-1]])
    for pkg in sorted(needed_packages(binary)):
        check(pkg in final, "Dockerfile: runtime stage lacks %s (recstream links it)" % pkg)
    deps = open(repo + "/scripts/install-deps.sh").read()
    for pkg in stage_pkgs[stages[0]]:
        check(re.search(r"\b%s\b" % re.escape(pkg), deps),
              "Dockerfile: build package %s is not in scripts/install-deps.sh" % pkg)


def main():
    repo, binary = sys.argv[1], sys.argv[2]
    check_compose(repo, binary)
    check_dockerfile(repo, binary)
    for e in errors:
        print("FAIL: " + e)
    if not errors:
        print("ok: docker-compose.yml and Dockerfile")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
