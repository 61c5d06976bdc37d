"""The lab model: what lab.yaml may say, as frozen pydantic models. Loading lives in `config/load.py`.

Field-level rules live here (names, sizes, durations); rules that relate several fields (exactly one
LB, unique VM names, ports that collide) live in `config/load.py`, so each is reported with its own path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,  # YAML `true` is a bool; pydantic's lax mode would take it as 1
    model_validator,
)

from labctl.scalars import (
    CLASS_TEMPLATE_DOMAIN,
    ENV_NAME_RE,
    GIT_REF_RE,
    LXD_NAME_RE,
    MAX_STUDENTS,
    PM2_NAME_RE,
    STUDENT_FIELD,
    Disk,
    Domain,
    Duration,
    Image,
    Memory,
    Name,
    _no_nul,
    _pattern,
)

Port = Annotated[StrictInt, Field(ge=1, le=65535)]
# A lab serves a few names; thousands would make one hosts-file line and one nginx server_name.
MAX_ALIASES: Final = 20
Role = Literal["app", "lb"]
ShellCommand = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_no_nul)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VmDefaults(_Strict):
    cpus: Annotated[StrictInt, Field(ge=1, le=64)] = 1
    memory: Memory = "1G"
    disk: Disk = "5G"


class AppSource(_Strict):
    """Exactly one of `builtin`, `git` or `path`."""

    builtin: Literal["hello"] | None = None
    git: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _git_url(v))] = None
    ref: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _git_ref(v))] = None
    path: str | None = None
    include_private: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=100)
    ] = Field(
        default=[],
        description="Patterns (fnmatch, relative to source.path) of private files to pack anyway "
        "(.env, keys: left out by default)",
    )


def _git_url(value: Any) -> str:
    # A URL or a path git understands. Never starts with "-" so it cannot become a git option.
    # Which transports are allowed is checked in config/sources.py (git_url_problem).
    if not isinstance(value, str) or not value:
        problem = "expected text"
    elif value.startswith("-"):
        problem = "it starts with '-' (git would read it as an option)"
    elif re.search(r"[\s\x00]", value) and "::" not in value.split("/", 1)[0]:
        problem = "it contains whitespace or a control character"  # (`ext::` has its own rule)
    else:
        return value
    raise ValueError(
        f'{value!r} is not a git URL (like "https://github.com/owner/repo"): {problem}'
    )


def _git_ref(value: Any) -> str:
    if isinstance(value, str) and value.startswith("-"):
        raise ValueError(
            f"{value!r} is not a valid git ref: it must not start with '-' (git would read it as "
            "an option)"
        )
    if isinstance(value, str) and ".." in value:
        raise ValueError(f"{value!r} is not a valid git ref: '..' is not allowed in a ref")
    return _pattern(GIT_REF_RE, "git ref")(value)  # type: ignore[no-any-return]


class AppStart(_Strict):
    """How pm2 runs the app: exactly one of `serve` (static dir), `script` (a Node file) or `command`."""

    serve: str | None = None
    spa: bool = True
    script: str | None = None
    command: ShellCommand | None = None
    instances: Annotated[StrictInt, Field(ge=1, le=16)] = 1


class App(_Strict):
    name: Annotated[str, BeforeValidator(_pattern(PM2_NAME_RE, "pm2 process name"))] = "app"
    source: AppSource = AppSource(builtin="hello")
    install: ShellCommand | None = None
    build: ShellCommand | None = None
    start: AppStart | None = None
    port: Port = 3000
    node_version: Literal[18, 20, 22, 24] = 20
    env: dict[
        Annotated[str, BeforeValidator(_pattern(ENV_NAME_RE, "environment variable name"))],
        Annotated[str, Field(max_length=8000), AfterValidator(_no_nul)],
    ] = {}
    secret_env: list[str] = Field(
        default=[], description="Names in `env` whose values are never printed"
    )


class Vm(_Strict):
    name: Name
    roles: Annotated[list[Role], Field(min_length=1, max_length=2)]
    cpus: Annotated[StrictInt, Field(ge=1, le=64)] | None = None
    memory: Memory | None = None
    disk: Disk | None = None


class LoadBalancer(_Strict):
    """nginx upstream settings; the defaults follow measured failover (docs/nginx-failover.md)."""

    method: Literal["round_robin", "least_conn", "ip_hash"] = "round_robin"
    max_fails: Annotated[StrictInt, Field(ge=0, le=100)] = 2
    fail_timeout: Duration = 5.0
    keepalive: Annotated[StrictInt, Field(ge=0, le=1024)] = 16
    port: Port = 80
    connect_timeout: Duration = 2.0
    # Below a browser's or a load generator's 5 s patience, so a hung (SIGSTOPed) app is retried on the
    # next backend in time: 3 s measured 0 failed requests, 5 s did not (docs/nginx-failover.md).
    # Raise it for apps with slow requests.
    read_timeout: Duration = 3.0
    retry_non_idempotent: bool = False


class Waits(_Strict):
    """Per-stage time limits."""

    launch: Duration = (
        900.0  # an app VM that builds the course's app needs minutes (docs/provisioning.md)
    )
    cloud_init: Duration = 1800.0
    serve: Duration = 180.0
    # one short exec into a VM: `status`'s health check, the ownership check, log tails
    check: Duration = 45.0


class Snapshots(_Strict):
    """Automatic snapshots (Multipass >= 1.13 and a driver with snapshots; skipped otherwise)."""

    # After the first healthy `up`, stop the lab, snapshot every VM as `baseline`, start it again:
    # `labctl reset` restores it instead of relaunching (minutes of cloud-init saved).
    baseline: bool = True


class ClassRoster(_Strict):
    """`class:` one lab per student: instances `<lab>-<student>-<vm>`, each with its own LB and
    domain (`domain` with `{student}` replaced by the student's name, lower-cased)."""

    students: Annotated[list[Name], Field(max_length=MAX_STUDENTS)] | None = None
    roster: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_no_nul)] | None = (
        Field(
            default=None,
            description="A CSV or text file (first column: the student), relative to lab.yaml",
        )
    )
    domain: Annotated[str, Field(min_length=1, max_length=253)]
    aliases: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=MAX_ALIASES)
    ] = []

    def domain_for(self, student: str) -> str:
        return self.domain.replace(STUDENT_FIELD, student.lower())

    def aliases_for(self, student: str) -> list[str]:
        return [alias.replace(STUDENT_FIELD, student.lower()) for alias in self.aliases]


EngineName = Literal["multipass", "lxd"]
ENGINE_NAMES: Final = ("multipass", "lxd")
LxdName = Annotated[str, BeforeValidator(_pattern(LXD_NAME_RE, "LXD name"))]


def _lxd_project(value: Any) -> Any:
    """An LXD project name, `{student}` allowed (each student's is checked with the roster)."""
    if isinstance(value, str) and LXD_NAME_RE.fullmatch(value.replace(STUDENT_FIELD, "s")):
        return value
    return _pattern(LXD_NAME_RE, "LXD name (it may contain {student})")(value)


LxdProject = Annotated[str, BeforeValidator(_lxd_project)]
# The `engine:` keys that only LXD has (under Multipass they are refused where they are written).
LXD_ONLY_KEYS: Final = ("remote", "project", "type", "profiles", "cli")


def _engine_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value  # `engine: lxd`


class EngineSettings(_Strict):
    """`engine:` which engine runs the lab's instances (default: Multipass when it is installed,
    else a usable LXD), and for LXD where: the remote, project, instance type, profiles, CLI."""

    name: EngineName
    remote: LxdName | None = Field(
        default=None, description="An `lxc remote` name (LXD); default: the local daemon"
    )
    project: LxdProject | None = Field(
        default=None,
        description="LXD project; default: default. In a class, `{student}` in it gives each "
        "student a restricted project of their own (created by `up`)",
    )
    type: Literal["container", "vm"] | None = Field(
        default=None, description="LXD instance type; default: container"
    )
    profiles: Annotated[list[LxdName], Field(min_length=1, max_length=16)] | None = Field(
        default=None, description="LXD profiles every instance gets; default: [default]"
    )
    cli: Literal["lxc", "incus"] | None = Field(
        default=None, description="The LXD client: lxc (LXD) or incus (Incus); default: lxc"
    )

    @property
    def lxd_remote(self) -> str:
        return self.remote or "local"

    @property
    def lxd_project(self) -> str:
        return self.project or "default"

    @property
    def per_student_project(self) -> bool:
        """Each student of a class has an LXD project of their own (`{student}` in project)."""
        return self.project is not None and STUDENT_FIELD in self.project

    def project_for(self, student: str | None) -> str:
        """The LXD project of `student`'s lab (`{student}` replaced), or the lab's one."""
        if student is None or not self.per_student_project:
            return self.lxd_project
        return self.lxd_project.replace(STUDENT_FIELD, student.lower())

    @property
    def lxd_type(self) -> str:
        return self.type or "container"

    @property
    def lxd_profiles(self) -> tuple[str, ...]:
        return tuple(self.profiles or ("default",))

    @property
    def lxd_cli(self) -> str:
        return self.cli or "lxc"


class EngineHost(_Strict):
    """A server of the lab's engine that students are placed on: the local one (no `remote`), or
    for LXD an `lxc remote` (another LXD server). Declared capacity is what the capacity check
    uses for a remote one (it cannot be measured from here)."""

    name: Name
    remote: LxdName | None = Field(
        default=None, description="An `lxc remote` name (engine lxd); absent: the local daemon"
    )
    member: LxdName | None = Field(
        default=None,
        description="A member of the LXD cluster the remote is (engine lxd): the students placed "
        "on this host get their whole lab on that member",
    )
    # Remote Multipass daemons are retired: kept in the model only so that lab.yaml's `address:`
    # is refused with the reason (config/load.py) instead of as an unknown key.
    address: Any = Field(
        default=None, description="Retired: Multipass does not support remote daemons"
    )
    cpus: Annotated[StrictInt, Field(ge=1, le=4096)] | None = None
    memory: Memory | None = None
    disk: Disk | None = None


Stage = Literal["app", "proxy", "lb"]  # a step of the course; lb = the finished lab
STAGES: Final = ("app", "proxy", "lb")
BUILTIN_CHECKS: Final = (  # `labctl check`'s built-in checks, in the order they run
    "app-online", "domain-resolves", "lb-serves", "reverse-proxy", "load-balancing",
    "browser", "failover", "pm2-resurrect",
)  # fmt: skip


class HttpExpect(_Strict):
    """A custom check's request: through the LB with the lab's domain as Host (or to `vm` directly)."""

    path: Annotated[str, Field(pattern=r"^/[!-~]{0,1000}$")] = "/"
    vm: Name | None = None
    status: Annotated[StrictInt, Field(ge=100, le=599)] = 200
    text: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    header: dict[Annotated[str, Field(pattern=r"^[!-9;-~]{1,100}$")], str] = {}


class CommandExpect(_Strict):
    """A custom check's command: `sh -c RUN` on `vm` (as the default user), exit code and output."""

    vm: Name
    run: ShellCommand
    exit_code: Annotated[StrictInt, Field(ge=0, le=255)] = 0
    output: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class CustomCheck(_Strict):
    """One `checks:` entry: exactly one of `http` or `command`."""

    name: Annotated[str, BeforeValidator(_pattern(PM2_NAME_RE, "check name"))]
    http: HttpExpect | None = None
    command: CommandExpect | None = None
    timeout: Duration = 10.0  # per attempt
    retry: Annotated[StrictInt, Field(ge=0, le=20)] = 0  # more attempts after a failure
    retry_interval: Duration = 2.0


class BrowserWait(_Strict):
    """What "rendered" means for the browser check: exactly one of a CSS selector that matches or
    a text the page shows (config/load.py checks there is one)."""

    selector: (
        Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_nul)] | None
    ) = None
    text: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_nul)] | None = None


class BrowserSettings(_Strict):
    """`browser:` the built-in `browser` check: the domain opened in a headless browser."""

    enabled: bool = True
    wait_for: BrowserWait | None = Field(
        default=None,
        description="What rendered means (default: the hello app's text for the built-in app, "
        "else any text on the page)",
    )
    paths: Annotated[
        list[Annotated[str, Field(pattern=r"^/[!-~]{0,1000}$")]], Field(min_length=1, max_length=10)
    ] = ["/"]
    timeout: Duration = 15.0  # per page: until rendered, then the network settling


class Lab(_Strict):
    name: Name
    domain: Domain
    aliases: Annotated[list[Domain], Field(max_length=MAX_ALIASES)] = []
    image: Image = "24.04"
    defaults: VmDefaults = VmDefaults()
    app: App = App()
    vms: Annotated[list[Vm], Field(min_length=1, max_length=64)]
    lb: LoadBalancer = LoadBalancer()
    waits: Waits = Waits()
    manage_hosts: bool = True
    snapshots: Snapshots = Snapshots()
    class_: ClassRoster | None = Field(default=None, alias="class")
    hosts: Annotated[list[EngineHost], Field(max_length=64)] = []
    engine: Annotated[EngineSettings | None, BeforeValidator(_engine_shorthand)] = None
    stage: Stage = "lb"
    checks: Annotated[list[CustomCheck], Field(max_length=100)] = []
    browser: BrowserSettings = BrowserSettings()

    @model_validator(mode="before")
    @classmethod
    def _class_domain(cls, data: Any) -> Any:
        # A class lab's domains come from class.domain; the template lab gets a placeholder.
        if isinstance(data, dict) and "class" in data and "domain" not in data:
            return {**data, "domain": CLASS_TEMPLATE_DOMAIN}
        return data

    @property
    def is_class(self) -> bool:
        return self.class_ is not None

    @property
    def students(self) -> list[str]:
        return list(self.class_.students or []) if self.class_ else []

    def for_student(self, student: str) -> Lab:
        """The lab of one student: `<lab>-<student>`, its domain from the pattern, same VMs."""
        roster = self.class_
        assert roster is not None
        return self.model_copy(
            update={
                "name": f"{self.name}-{student}",
                "domain": roster.domain_for(student),
                "aliases": roster.aliases_for(student),
                "class_": None,
                "hosts": [],
            }
        )

    def instance_name(self, vm: Vm) -> str:
        return f"{self.name}-{vm.name}"

    @property
    def lb_vm(self) -> Vm:
        return next(vm for vm in self.vms if "lb" in vm.roles)

    @property
    def app_vms(self) -> list[Vm]:
        return [vm for vm in self.vms if "app" in vm.roles]

    def vm(self, name: str) -> Vm | None:
        return next((vm for vm in self.vms if vm.name == name), None)

    def cpus_of(self, vm: Vm) -> int:
        return vm.cpus if vm.cpus is not None else self.defaults.cpus

    def memory_of(self, vm: Vm) -> str:
        return vm.memory if vm.memory is not None else self.defaults.memory

    def disk_of(self, vm: Vm) -> str:
        return vm.disk if vm.disk is not None else self.defaults.disk

    @property
    def server_names(self) -> list[str]:
        return [self.domain, *self.aliases]

    # --- what the lab's stage provides: the one place these rules live -------------------------
    @property
    def proxied_vms(self) -> list[Vm]:
        """The app VMs labctl puts behind the LB: none at `app` (the student writes the proxy),
        the first one at `proxy` (the course's step E), all of them at `lb`."""
        return {"app": [], "proxy": self.app_vms[:1], "lb": self.app_vms}[self.stage]

    @property
    def hosts_managed(self) -> bool:
        """At stage `app` the hosts entry is written only when lab.yaml asks (`manage_hosts: true`)."""
        if self.stage == "app":
            return self.manage_hosts and "manage_hosts" in self.model_fields_set
        return self.manage_hosts

    @property
    def url(self) -> str:
        """The site's address as a browser needs it: with the LB port unless it is 80."""
        return f"http://{self.domain}{'' if self.lb.port == 80 else f':{self.lb.port}'}/"
