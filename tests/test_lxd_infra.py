"""The LXD test infrastructure's own rules, checked without a daemon: the clean-up removes only
LXD's rules for the tests' own networks (never a developer's LXD or Docker rules, never more
copies than LXD added), and the image's metadata seeds cloud-init from the instance's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lxd import hostnet
from tests.lxd.image import SEED, TEMPLATES, metadata

OURS = '-A INPUT -i lxtbr0 -p udp -m udp --dport 67 -m comment --comment "generated for LXD network lxtbr0" -j ACCEPT'
DEVELOPERS_LXD = '-A INPUT -i lxdbr0 -p udp -m udp --dport 67 -m comment --comment "generated for LXD network lxdbr0" -j ACCEPT'
DOCKER = "-A FORWARD -o docker0 -j ACCEPT"
OUR_LAN = "-A FORWARD -i lxtlan0 -j ACCEPT"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [(OURS, True), (OUR_LAN, True), (DEVELOPERS_LXD, False), (DOCKER, False)],
)
def test_only_rules_for_the_tests_own_devices_are_ours(rule: str, expected: bool) -> None:
    assert hostnet.ours(rule, "lxt") is expected


def test_restore_deletes_lxd_s_duplicates_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a daemon restart LXD's rules are there twice; a developer's LXD and Docker added
    rules meanwhile: exactly our copies go, one `-D` each."""
    baseline = {"iptables filter": ["-P INPUT ACCEPT"]}
    now = {"iptables filter": ["-P INPUT ACCEPT", OURS, DEVELOPERS_LXD, OURS, DOCKER]}
    deleted: list[list[str]] = []

    def fake_run(argv: list[str], **_: Any) -> None:
        deleted.append(argv)

    monkeypatch.setattr(hostnet, "firewall_snapshot", lambda: now)
    monkeypatch.setattr(hostnet, "run", fake_run)
    removed = hostnet.restore_firewall(baseline, "lxt")
    assert removed == [f"iptables filter: {OURS}"] * 2
    assert all(argv[:6] == ["iptables", "-w", "5", "-t", "filter", "-D"] for argv in deleted)
    assert [argv[6:9] for argv in deleted] == [["INPUT", "-i", "lxtbr0"]] * 2
    assert '"generated for LXD network lxtbr0"' not in " ".join(deleted[0])  # argv, unquoted
    assert "generated for LXD network lxtbr0" in deleted[0]


def test_a_rule_that_was_there_before_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = {"iptables filter": [OURS]}
    monkeypatch.setattr(hostnet, "firewall_snapshot", lambda: {"iptables filter": [OURS, OURS]})
    monkeypatch.setattr(hostnet, "run", lambda argv, **_: None)
    assert hostnet.restore_firewall(baseline, "lxt") == [f"iptables filter: {OURS}"]
    assert hostnet.leftover_lxd_rules(baseline, "lxt") == [f"iptables filter: {OURS}"]


def test_the_image_metadata_seeds_nocloud_from_the_instance_keys() -> None:
    meta = metadata("0123456789abcdef", 1_800_000_000)
    templates = meta["templates"]
    assert set(templates) == {
        "/etc/hostname",
        "/etc/hosts",
        f"{SEED}/meta-data",
        f"{SEED}/user-data",
        f"{SEED}/vendor-data",
        f"{SEED}/network-config",
    }
    for entry in templates.values():
        assert entry["when"] == ["create", "copy"]
        assert (TEMPLATES / entry["template"]).is_file()
    assert templates[f"{SEED}/user-data"]["properties"] == {"default": "#cloud-config\n{}\n"}
    user = (TEMPLATES / templates[f"{SEED}/user-data"]["template"]).read_text()
    assert 'config_get("cloud-init.user-data"' in user and 'config_get("user.user-data"' in user
    network = (TEMPLATES / templates[f"{SEED}/network-config"]["template"]).read_text()
    assert "type: dhcp" in network and "name: eth0" in network
    assert meta["properties"]["labctl.recipe"] == "0123456789abcdef"


def test_the_image_recipe_hash_follows_its_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.lxd import image

    copy = tmp_path / "templates"
    copy.mkdir()
    for template in TEMPLATES.glob("*.tpl"):
        (copy / template.name).write_text(template.read_text())
    monkeypatch.setattr(image, "TEMPLATES", copy)
    unchanged = image.recipe_hash()
    (copy / "hosts.tpl").write_text("127.0.0.1 localhost\n")
    assert image.recipe_hash() != unchanged
