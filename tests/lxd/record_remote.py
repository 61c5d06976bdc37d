"""Recordings over LXD's HTTPS API (see record.py): a cluster with a member going down, a second
client adding remotes (refused, by token, restricted to a project, then distrusted) and a
server whose certificate changed under a remote's pinned one."""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING

from tests.lxd.cluster import LxdCluster
from tests.lxd.daemon import LxdDaemon
from tests.lxd.server import IMAGE_ALIAS

if TYPE_CHECKING:
    from tests.lxd.record import Recorder

STANDALONE_ADDRESS = "127.0.1.9:18443"


def second_client(server: LxdDaemon, name: str) -> LxdDaemon:
    """An `lxc` with its own LXD_CONF (certificate, remotes), like a student's laptop."""
    client = LxdDaemon(server.dir, name=name)
    client.conf_dir = server.dir.parent / f"{name}.client"
    client.conf_dir.mkdir(parents=True, exist_ok=True)
    client.env["LXD_CONF"] = str(client.conf_dir)
    return client


def trust_token(server: LxdDaemon, name: str, *extra: str, rec: Recorder | None = None) -> str:
    """`lxc config trust add` prints the join token last; recorded with the token replaced."""
    proc = server.lxc("config", "trust", "add", "--name", name, *extra)
    token = proc.stdout.strip().splitlines()[-1]
    if rec is not None:
        rec.calls["trust-add"] = {
            "argv": ["config", "trust", "add", "--name", name, *extra],
            "rc": proc.returncode,
            "stdout": proc.stdout.replace(token, "<token>"),
            "stderr": proc.stderr,
        }
    return token


def record_cluster(rec: Recorder, cluster: LxdCluster) -> None:
    m1, alias = cluster.members[0], IMAGE_ALIAS
    rec.save_json("cluster-list", m1, "cluster", "list")
    tag = ["-c", "user.labctl.lab=rec"]
    rec.call("cluster-launch-m1", m1, "launch", alias, "lxt-k1", "--target", "m1", *tag)
    rec.call("cluster-launch-m2", m1, "launch", alias, "lxt-k2", "--target", "m2", *tag)
    rec.call("cluster-launch-no-target", m1, "init", alias, "lxt-k4")
    rec.call("cluster-launch-bad-target", m1, "launch", alias, "lxt-k9", "--target", "nosuch")
    rec.save_json("cluster-list-instances", m1, "list")
    rec.save_text("info-cluster", m1, "info", "lxt-k1")
    rec.call("cluster-list-location-filter", m1, "list", "location=m2", "--format", "json")
    cluster.stop_member("m2")
    rec.save_json("cluster-list-member-down", m1, "list")
    rec.call("cluster-list-tag-member-down", m1, "list", "user.labctl.lab=rec", "--format", "json")
    rec.call("cluster-list-name-member-down", m1, "list", "^lxt-k", "--format", "json")
    rec.save_json("cluster-list-member-stopped", m1, "cluster", "list")
    rec.call("cluster-exec-member-down", m1, "exec", "lxt-k2", "--", "true")
    rec.call("cluster-launch-target-down", m1, "launch", alias, "lxt-k3", "--target", "m2")
    rec.call("cluster-stop-member-down", m1, "stop", "lxt-k2", "--force")
    rec.call("cluster-info-member-down", m1, "info", "lxt-k2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the heartbeat notices after cluster.offline_threshold
        members = json.loads(m1.lxc("cluster", "list", "--format", "json").stdout)
        if any(m["status"] != "Online" for m in members):
            break
        time.sleep(2)
    rec.save_json("cluster-list-member-offline", m1, "cluster", "list")
    rec.call("cluster-launch-no-target-member-offline", m1, "init", alias, "lxt-k5")
    cluster.start_member("m2")
    record_trust(rec, cluster)


def record_trust(rec: Recorder, cluster: LxdCluster) -> None:
    m1 = cluster.members[0]
    student = second_client(m1, "student")
    url = f"https://{m1.address}"
    rec.call(
        "remote-add-bad-password",
        student,
        "remote",
        "add",
        "cl",
        url,
        "--accept-certificate",
        "--password",
        secrets.token_hex(8),
        shown=["remote", "add", "cl", url, "--accept-certificate", "--password", "<wrong>"],
    )
    m1.lxc(
        "project",
        "create",
        "lxt-s1",
        "-c",
        "restricted=true",
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=true",
        "-c",
        "restricted.snapshots=allow",
    )
    token = trust_token(m1, "lxt-student", "--projects", "lxt-s1", "--restricted", rec=rec)
    bad_token = token[:-8] + "AAAAAAAA"
    rec.secrets += [token, bad_token]
    rec.call(
        "remote-add-bad-token",
        student,
        "remote",
        "add",
        "bad",
        bad_token,
        shown=["remote", "add", "bad", "<a token with its end changed>"],
    )
    rec.call(
        "remote-add-token",
        student,
        "remote",
        "add",
        "cl",
        token,
        shown=["remote", "add", "cl", "<token>"],
    )
    rec.save_json("remote-list", student, "remote", "list")
    rec.call("student-list", student, "list", "cl:", "--format", "json")
    rec.call(
        "student-other-project", student, "list", "cl:", "--project", "default", "--format", "json"
    )
    rec.call("student-target", student, "init", "cl:labctl-test", "cl:lxt-s1a", "--target", "m1")
    rec.save_json("trust-list-restricted", m1, "config", "trust", "list")
    for cert in m1.lxc_json("config", "trust", "list"):
        if cert["name"] == "lxt-student":
            m1.lxc("config", "trust", "remove", cert["fingerprint"])
    rec.call("student-untrusted", student, "list", "cl:", "--format", "json")
    m1.lxc("project", "delete", "lxt-s1", check=False)


def record_certificate_change(rec: Recorder, server: LxdDaemon) -> None:
    """A remote pinned the server's certificate; the server gets a new one."""
    server.lxc("config", "set", "core.https_address", STANDALONE_ADDRESS)
    laptop = second_client(server, "laptop")
    laptop.lxc("remote", "add", "srv", trust_token(server, "lxt-laptop"))
    rec.call("remote-list-ok", laptop, "list", "srv:", "--format", "json")
    server.shutdown(timeout=30)
    for name in ("server.crt", "server.key"):
        (server.dir / name).unlink()
    server.start()  # a new key pair, as after a reinstall
    rec.call("remote-certificate-changed", laptop, "list", "srv:", "--format", "json")
    server.lxc("config", "unset", "core.https_address")
