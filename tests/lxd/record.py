"""Record what a real LXD prints, for the fake `lxc` to be checked against:
`python -m tests.lxd.record [OUT]` (root; default OUT tests/fixtures/lxd; run it under the heavy
lock: it starts the same server and cluster as the `lxd` tests, and cleans up the same way).

Writes JSON outputs verbatim (`list*.json`, `cluster-list.json`, ...), text outputs (`info-*.txt`,
`version.txt`) and `calls.json`: one entry per situation with the argv (secrets replaced), exit
code, stdout, stderr and seconds, for the error texts and exit codes the fake must reproduce.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.lxd.cluster import LxdCluster
from tests.lxd.daemon import LxdDaemon
from tests.lxd.image import ensure_image
from tests.lxd.instances import wait_cloud_init
from tests.lxd.record_remote import record_certificate_change, record_cluster
from tests.lxd.server import IMAGE_ALIAS, LxdServer
from tests.lxd.session import LxdRun

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "fixtures" / "lxd"
USER_DATA = "#cloud-config\nruncmd:\n  - [touch, /root/recorded]\n"
TAGS = {
    "user.labctl.lab": "rec",
    "user.labctl.vm": "app1",
    "limits.cpu": "1",
    "limits.memory": "512MiB",
}


@dataclass
class Recorder:
    out: Path
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: never written: replaced by "<secret>" wherever they appear in an output
    secrets: list[str] = field(default_factory=list)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<secret>")
        return text

    def call(
        self,
        label: str,
        daemon: LxdDaemon,
        *argv: str,
        stdin: str | None = None,
        shown: list[str] | None = None,
        timeout: float = 120,
    ) -> dict[str, Any]:
        started = time.monotonic()
        proc = daemon.lxc(*argv, input_text=stdin, check=False, timeout=timeout)
        entry = {
            "argv": shown or list(argv),
            "rc": proc.returncode,
            "stdout": self.scrub(proc.stdout),
            "stderr": self.scrub(proc.stderr),
            "seconds": round(time.monotonic() - started, 2),
        }
        self.calls[label] = entry
        print(f"record: {label}: rc {entry['rc']} {entry['stderr'].strip()[:100]}", flush=True)
        return entry

    def save_json(self, name: str, daemon: LxdDaemon, *argv: str) -> Any:
        data = json.loads(self.call(name, daemon, *argv, "--format", "json")["stdout"])
        (self.out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        return data

    def save_text(self, name: str, daemon: LxdDaemon, *argv: str) -> None:
        (self.out / f"{name}.txt").write_text(self.call(name, daemon, *argv)["stdout"])

    def finish(self) -> None:
        (self.out / "calls.json").write_text(
            json.dumps(self.calls, indent=2, sort_keys=True) + "\n"
        )


def body(config: dict[str, str]) -> str:
    return yaml.safe_dump({"config": config})


def record_server(rec: Recorder, lxd: LxdDaemon) -> None:
    alias = IMAGE_ALIAS
    rec.save_text("version", lxd, "version")
    rec.save_json("list-empty", lxd, "list")
    record_busy(rec, lxd)  # first: the first create on a pool unpacks the image (a wide window)
    rec.call(
        "launch",
        lxd,
        "launch",
        alias,
        "lxt-rec1",
        stdin=body({**TAGS, "cloud-init.user-data": USER_DATA}),
    )
    rec.call("init", lxd, "init", alias, "lxt-rec2", "-c", "user.labctl.lab=other")
    wait_cloud_init(lxd, "lxt-rec1")
    rec.save_json("list", lxd, "list")
    rec.call("snapshot", lxd, "snapshot", "lxt-rec1", "snap0")
    rec.save_json("list-snapshots", lxd, "list", "lxt-rec1")
    filters = {"tag": "user.labctl.lab=rec", "regex": "^lxt-rec", "status": "status=stopped"}
    for label, expr in filters.items():
        rec.call(f"list-filter-{label}", lxd, "list", expr, "--format", "json")
    rec.save_text("info-running", lxd, "info", "lxt-rec1")
    rec.save_text("info-stopped", lxd, "info", "lxt-rec2")
    rec.save_text("info-server", lxd, "info")
    rec.save_json("project-list", lxd, "project", "list")
    rec.save_json("profile-list", lxd, "profile", "list")
    rec.save_json("storage-list", lxd, "storage", "list")
    rec.save_json("network-list", lxd, "network", "list")
    rec.save_json("image-list", lxd, "image", "list")
    rec.save_json("trust-list", lxd, "config", "trust", "list")
    rec.call(
        "exec-code", lxd, "exec", "lxt-rec1", "--", "sh", "-c", "echo out; echo err >&2; exit 33"
    )
    rec.call("exec-not-found", lxd, "exec", "lxt-rec1", "--", "no-such-command")
    rec.call("exec-not-executable", lxd, "exec", "lxt-rec1", "--", "/etc/hostname")
    rec.call("exec-stopped", lxd, "exec", "lxt-rec2", "--", "true")
    rec.call("exec-missing", lxd, "exec", "nosuch", "--", "true")
    rec.call("info-missing", lxd, "info", "nosuch")
    rec.call("stop-missing", lxd, "stop", "nosuch")
    rec.call("start-missing", lxd, "start", "nosuch")
    rec.call("delete-missing", lxd, "delete", "nosuch", "--force")
    rec.call("launch-exists", lxd, "launch", alias, "lxt-rec1")
    rec.call("launch-no-image", lxd, "launch", "no-such-image", "lxt-rec3")
    rec.call("launch-bad-name", lxd, "launch", alias, "Bad_Name")
    rec.call("launch-target-standalone", lxd, "launch", alias, "lxt-rec3", "--target", "m1")
    rec.call("launch-bad-config", lxd, "launch", alias, "lxt-rec3", "-c", "limits.memory=lots")
    rec.call("launch-no-profile", lxd, "launch", alias, "lxt-rec3", "-p", "nosuch")
    rec.call("start-running", lxd, "start", "lxt-rec1")
    rec.call("stop-stopped", lxd, "stop", "lxt-rec2")
    rec.call("delete-running", lxd, "delete", "lxt-rec1")
    rec.call("snapshot-exists", lxd, "snapshot", "lxt-rec1", "snap0")
    rec.call("restore-missing", lxd, "restore", "lxt-rec1", "nosnap")
    rec.call("delete-snapshot-missing", lxd, "delete", "lxt-rec1/nosnap")
    rec.call("restore", lxd, "restore", "lxt-rec1", "snap0")
    rec.call("delete-snapshot", lxd, "delete", "lxt-rec1/snap0")
    rec.call("stop-timeout", lxd, "stop", "lxt-rec1", "--timeout", "30")
    rec.call("start", lxd, "start", "lxt-rec1")
    rec.call("stop-force", lxd, "stop", "lxt-rec1", "--force")
    rec.call("start-again", lxd, "start", "lxt-rec1")
    rec.call("pause", lxd, "pause", "lxt-rec1")
    rec.save_json("list-frozen", lxd, "list", "lxt-rec1")
    rec.call("start-frozen", lxd, "start", "lxt-rec1")
    rec.call("project-create", lxd, "project", "create", "lxt-p1", "-c", "features.images=false")
    rec.call("profile-create", lxd, "profile", "create", "lxt-prof")
    rec.call(
        "profile-device-add",
        lxd,
        "profile",
        "device",
        "add",
        "lxt-prof",
        "root",
        "disk",
        "path=/",
        "pool=default",
    )
    rec.call("profile-delete", lxd, "profile", "delete", "lxt-prof")
    rec.call("project-delete", lxd, "project", "delete", "lxt-p1")
    rec.call("project-missing", lxd, "list", "--project", "nosuch", "--format", "json")
    rec.call("launch-project-missing", lxd, "init", alias, "lxt-rec3", "--project", "nosuch")
    rec.call("remote-missing", lxd, "list", "nosuch:", "--format", "json")
    rec.call("usage-command", lxd, "nosuchcmd")
    rec.call("usage-flag", lxd, "list", "--nosuchflag")
    rec.call("usage-exec-no-command", lxd, "exec", "lxt-rec1")
    rec.call("usage-launch-no-args", lxd, "launch")
    record_cloud_init(rec, lxd)
    record_quota(rec, lxd)
    record_queries(rec, lxd)
    rec.call("delete-force", lxd, "delete", "--force", "lxt-rec1", "lxt-rec2")


def record_cloud_init(rec: Recorder, lxd: LxdDaemon) -> None:
    """cloud-init status as labctl reads it: done, and a runcmd that fails."""
    rec.call(
        "cloud-init-wait-done", lxd, "exec", "lxt-rec1", "--", "cloud-init", "status", "--wait"
    )
    rec.call(
        "cloud-init-long-done", lxd, "exec", "lxt-rec1", "--", "cloud-init", "status", "--long"
    )
    failing = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo failing on purpose; exit 3']\n"
    lxd.lxc("launch", IMAGE_ALIAS, "lxt-rec4", input_text=body({"cloud-init.user-data": failing}))
    rec.call(
        "cloud-init-wait-error", lxd, "exec", "lxt-rec4", "--", "cloud-init", "status", "--wait"
    )
    rec.call(
        "cloud-init-long-error", lxd, "exec", "lxt-rec4", "--", "cloud-init", "status", "--long"
    )
    lxd.lxc("delete", "--force", "lxt-rec4")


def record_busy(rec: Recorder, lxd: LxdDaemon) -> None:
    """Calls while `lxc init` is still creating the instance: as soon as it is listed (its
    record exists), the create operation is still unpacking the image."""
    for verb in ("delete", "start"):
        name = f"lxt-busy-{verb}"
        creating = subprocess.Popen(
            ["lxc", "init", IMAGE_ALIAS, name],
            env=lxd.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while name not in lxd.instance_names() and time.monotonic() < deadline:
                time.sleep(0.02)
            rec.call(
                f"{verb}-while-creating",
                lxd,
                verb,
                name,
                *(["--force"] if verb == "delete" else []),
            )
        finally:
            creating.wait(300)
        lxd.lxc("delete", "--force", name, check=False)


def record_quota(rec: Recorder, lxd: LxdDaemon) -> None:
    """Project limits: what 5.0.2 refuses (and what it lets through). The project shares the
    default project's images and profiles, as a per-class project would."""
    features = ["-c", "features.images=false", "-c", "features.profiles=false"]
    limits = ["-c", "limits.instances=1", "-c", "limits.memory=1GiB"]
    lxd.lxc("project", "create", "lxt-quota", *features, *limits)
    in_project = ["--project", "lxt-quota"]
    for label, name, memory in (
        ("quota-memory", "lxt-q1", "2GiB"),
        ("quota-first", "lxt-q1", "256MiB"),
        ("quota-instances", "lxt-q2", "256MiB"),
    ):
        rec.call(
            label, lxd, "init", IMAGE_ALIAS, name, *in_project, "-c", f"limits.memory={memory}"
        )
    for name in ("lxt-q1", "lxt-q2"):
        lxd.lxc("delete", "--force", name, *in_project, check=False)
    lxd.lxc("project", "delete", "lxt-quota", check=False)


def record_queries(rec: Recorder, lxd: LxdDaemon) -> None:
    """`lxc query` (what labctl's engine asks an initialised server, and how a miss reads)."""
    for label, path in (
        ("query-server", "/1.0"),
        ("query-project", "/1.0/projects/default"),
        ("query-project-missing", "/1.0/projects/nosuch"),
        ("query-pools", "/1.0/storage-pools?recursion=1&project=default"),
        ("query-profile", "/1.0/profiles/default?project=default"),
        ("query-profile-missing", "/1.0/profiles/nosuch?project=default"),
        ("query-network", "/1.0/networks/lxtbr0"),
        ("query-alias", f"/1.0/images/aliases/{IMAGE_ALIAS}?project=default"),
        ("query-alias-missing", "/1.0/images/aliases/nosuch?project=default"),
    ):
        rec.call(label, lxd, "query", f"local:{path}")
    rec.call("query-project-flag", lxd, "query", "local:/1.0", "--project", "default")
    rec.call("remote-list-json", lxd, "remote", "list", "--format", "json")


def record_uninitialised(rec: Recorder, run: LxdRun) -> None:
    """A daemon that was installed but never initialised: no pool, a default profile with no
    devices, no network (what `labctl lxd-init` is for)."""
    fresh = LxdDaemon(run.root / "fresh", name="fresh")
    fresh.start()
    try:
        rec.call("fresh-pools", fresh, "query", "local:/1.0/storage-pools?recursion=1")
        rec.call("fresh-profile", fresh, "query", "local:/1.0/profiles/default?project=default")
        rec.call("fresh-launch", fresh, "init", "nosuch", "lxt-fresh")
    finally:
        fresh.shutdown()


def record_unreachable(rec: Recorder, lxd: LxdDaemon) -> None:
    rec.call("daemon-unreachable-list", lxd, "list", "--format", "json")
    rec.call("daemon-unreachable-version", lxd, "version")


def queries_only(out: Path) -> int:
    """`python -m tests.lxd.record --queries [OUT]`: only the `lxc query` situations and an
    uninitialised daemon's answers, added to the existing calls.json."""
    rec = Recorder(out)
    rec.calls = json.loads((out / "calls.json").read_text())
    image = ensure_image()
    run = LxdRun()
    run.begin()
    try:
        server = LxdServer.start(run, image)
        try:
            record_queries(rec, server.daemon)
        finally:
            server.stop()
        record_uninitialised(rec, run)
    finally:
        rec.finish()
        run.end()
    return 0


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(out)
    image = ensure_image()
    run = LxdRun()
    run.begin()
    try:
        server = LxdServer.start(run, image)
        try:
            record_server(rec, server.daemon)
            record_certificate_change(rec, server.daemon)
        finally:
            server.stop()
        record_unreachable(rec, server.daemon)
        record_uninitialised(rec, run)
        cluster = LxdCluster.start(run, image, size=2)
        try:
            record_cluster(rec, cluster)
        finally:
            cluster.stop()
    finally:
        rec.finish()
        run.end()
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--queries"]:
        sys.exit(queries_only(Path(args[1]) if len(args) > 1 else DEFAULT_OUT))
    sys.exit(main(Path(args[0]) if args else DEFAULT_OUT))
