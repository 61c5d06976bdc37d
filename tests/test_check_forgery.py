"""`labctl check` against a student who fakes the grade (root in their VMs, their own nginx).

Each test is the attack, on the fast world of tests/check_world.py (loopback stand-ins for the
apps and for the student's nginx): a static nginx reply with a backend header alternating between
the app VMs, a proxy_pass in a location nobody requests, a listener that is not the app under a
pm2 process of the app's name, a stopped backend that keeps answering. Each must fail its check,
and the honest lab must still pass every check, for every kind of app labctl can grade.
"""

from __future__ import annotations

import pytest

from labctl.ops.check import check
from tests.check_world import (
    APP_FOLDER,
    APPS,
    HELLO_SOURCE,
    SCRIPT_SOURCE,
    SERVE_SOURCE,
    UNREQUESTED_PROXY_NGINX,
    CheckWorld,
)


def verdicts(world: CheckWorld, *only: str) -> dict[str, tuple[bool, str]]:
    result = check(world.ctx, list(only) or None)
    return {r.name: (r.passed, r.reason) for r in result.results}


def planted(world: CheckWorld) -> dict[str, dict[str, str]]:
    return {vm: files for vm, files in world.guest.files.items() if files}


@pytest.mark.parametrize("source", [HELLO_SOURCE, SERVE_SOURCE, SCRIPT_SOURCE])
def test_the_honest_lab_passes_every_check_and_is_left_as_it_was(check_world, source) -> None:
    world = check_world(source=source)
    result = check(world.ctx)
    assert result.passed, [(r.name, r.reason) for r in result.results if not r.passed]
    assert world.guest.online == set(APPS)
    assert planted(world) == {}  # labctl's check files are gone again


def test_a_static_nginx_reply_with_an_alternating_backend_header_fails(check_world) -> None:
    world = check_world()
    world.mode = "fake"  # 200 "hello from appN" + X-Labctl-Vm/X-Lab-Backend appN, no app behind
    got = verdicts(world, "lb-serves", "load-balancing")
    assert got["lb-serves"][0] is False, got["lb-serves"]
    assert got["load-balancing"][0] is False, got["load-balancing"]
    assert "check file" in got["load-balancing"][1]
    assert "check file" in got["lb-serves"][1]
    assert planted(world) == {}


def test_the_header_fake_fails_for_a_static_frontend_served_by_pm2(check_world) -> None:
    world = check_world(source=SERVE_SOURCE)
    world.mode = "fake"  # the frontend's own index page, copied into nginx
    got = verdicts(world, "lb-serves", "load-balancing", "reverse-proxy")
    assert not any(passed for passed, _ in got.values()), got


def test_the_header_fake_fails_for_an_app_labctl_cannot_plant_a_file_in(check_world) -> None:
    world = check_world(source=SCRIPT_SOURCE)
    world.mode = "fake"
    got = verdicts(world, "lb-serves", "load-balancing", "reverse-proxy")
    assert not any(passed for passed, _ in got.values()), got
    assert "every app stopped" in got["load-balancing"][1], got["load-balancing"]
    assert world.guest.online == set(APPS)  # the apps it stopped to find out are back


def test_a_proxy_pass_in_a_location_nobody_requests_fails_reverse_proxy(check_world) -> None:
    world = check_world()
    world.mode = "fake"  # only /nobody-asks/ is proxied
    world.guest.nginx_dump = UNREQUESTED_PROXY_NGINX
    passed, reason = verdicts(world, "reverse-proxy")["reverse-proxy"]
    assert not passed, reason
    assert "not proxied to the app" in reason


def test_a_listener_that_is_not_the_app_fails_app_online(check_world) -> None:
    world = check_world()
    world.guest.impostor.add("app2")  # pm2 shows hello online; the port answers something else
    passed, reason = verdicts(world, "app-online")["app-online"]
    assert not passed and reason.startswith("app2: "), reason
    assert "app1" not in reason and "app3" not in reason


@pytest.mark.parametrize("source", [HELLO_SOURCE, SCRIPT_SOURCE])
def test_the_app_served_outside_pm2_fails_app_online(check_world, source) -> None:
    world = check_world(source=source)
    world.guest.rogue.add("app3")  # the real app, but started by hand: pm2's hello is a dummy
    passed, reason = verdicts(world, "app-online")["app-online"]
    assert not passed, reason
    assert (
        reason == f"app3: port {world.app_port} is held by pid 4242 (python3), not by pm2's hello"
    )


def test_failover_fails_when_a_stopped_backend_keeps_answering(check_world) -> None:
    world = check_world()
    world.guest.rogue.add("app2")  # pm2 stop hello on app2 stops nothing that serves
    passed, reason = verdicts(world, "failover")["failover"]
    assert not passed, reason
    assert f"app2 stopped (pm2 stop hello), but port {world.app_port} still answers" in reason
    assert world.guest.online == set(APPS)


def test_failover_fails_for_an_unplantable_app_whose_stopped_backend_keeps_answering(
    check_world,
) -> None:
    world = check_world(source=SCRIPT_SOURCE)
    world.guest.rogue.add("app1")
    passed, reason = verdicts(world, "failover")["failover"]
    assert not passed and "app1 stopped (pm2 stop hello), but port" in reason, reason


def test_an_app_that_does_not_serve_its_check_file_is_not_counted_by_the_spa_fallback(
    check_world,
) -> None:
    """pm2 serve --spa answers index.html for a missing file: only the content counts."""
    world = check_world(source=SERVE_SOURCE)
    hook = world.mp.exec_hook

    def lost_write(name: str, argv: list[str]):
        if argv[3:4] == ["labctl-check"] and name == "hello-app2":
            return None  # the write does not happen (the memory multipass answers "ok")
        return hook(name, argv) if hook else None

    world.mp.exec_hook = lost_write
    got = verdicts(world, "app-online", "load-balancing")
    assert not got["app-online"][0] and got["app-online"][1].startswith("app2: "), got
    assert not got["load-balancing"][0] and "app2" in got["load-balancing"][1], got


def test_check_files_go_where_the_app_serves_and_are_removed_even_on_ctrl_c(check_world) -> None:
    world = check_world(source=SERVE_SOURCE)
    hook = world.mp.exec_hook
    seen: dict[str, dict[str, str]] = {}

    def interrupting(name: str, argv: list[str]):
        if argv[:2] == ["pm2", "stop"]:
            seen.update({vm: dict(files) for vm, files in world.guest.files.items()})
            raise KeyboardInterrupt
        return hook(name, argv) if hook else None

    world.mp.exec_hook = interrupting
    with pytest.raises(KeyboardInterrupt):
        check(world.ctx, ["app-online", "failover"])
    assert planted(world) == {}
    assert world.guest.online == set(APPS)
    tokens = [(path, token) for files in seen.values() for path, token in files.items()]
    assert len(tokens) == len(APPS) and len({token for _, token in tokens}) == len(APPS)
    assert len({path for path, _ in tokens}) == 1  # one path per run, one token per VM
    assert all(path.startswith(f"{APP_FOLDER}/build/labctl-check-") for path, _ in tokens)


def test_a_vm_that_cannot_say_who_listens_fails_app_online_only_without_a_check_file(
    check_world,
) -> None:
    unplantable = check_world(source=SCRIPT_SOURCE)
    unplantable.guest.report_listeners = False
    passed, reason = verdicts(unplantable, "app-online")["app-online"]
    assert not passed and "cannot tell what listens" in reason, reason
    hello = check_world()
    hello.guest.report_listeners = False  # its own check file proves the app answers
    assert verdicts(hello, "app-online")["app-online"][0] is True


def test_a_header_is_only_a_hint_in_the_reason(check_world) -> None:
    world = check_world()
    world.mode = "fake"
    passed, reason = verdicts(world, "load-balancing")["load-balancing"]
    assert not passed
    assert "header" in reason  # says what the header claimed, and that it proves nothing


def test_without_a_check_file_each_app_must_serve_the_domain_alone(check_world) -> None:
    world = check_world(source=SCRIPT_SOURCE)
    got = verdicts(world, "load-balancing")["load-balancing"]
    assert got[0] is True and "apps stopped in turn" in got[1], got
    world.mode = "one"  # the student's nginx proxies to app1 only
    passed, reason = verdicts(world, "load-balancing")["load-balancing"]
    assert not passed and reason.startswith("app2, app3 never served the domain"), reason
    assert world.guest.online == set(APPS)
