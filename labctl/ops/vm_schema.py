"""What labctl accepts from a VM: the labctl-vm-status report and the instance marker, as
pydantic models checked strictly (a number must be a JSON number, a flag true or false).

Whoever has root in a VM (a student) chooses every byte of these answers. An answer that does not
fit is that VM's problem, said in one line ("report from app1 does not fit:
app.processes[0].restarts is not an integer"); it never ends a command for the other VMs. JSON
is parsed by pydantic's parser, which refuses deep nesting and huge numbers with a ValueError
(Python's json module would recurse until RecursionError, or raise from int() past 4300 digits).
Only the fields labctl reads are declared; the rest of a report is ignored.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ITEMS: Final = 1000  # pm2 processes in a report
_Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
_Name = Annotated[str, Field(max_length=1000)]
_Word = Annotated[str, Field(max_length=200)]
_Message = Annotated[str, Field(max_length=8000)]  # vm_status.py cuts nginx -t's error to 2000


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


Doc = TypeVar("Doc", bound=_Answer)


class CloudInitDoc(_Answer):
    status: _Word | None = None


class Pm2ProcessDoc(_Answer):
    name: _Name | None = None
    status: _Word | None = None
    restarts: _Count | None = None
    pid: _Count | None = None


class ListenerDoc(_Answer):
    """A process holding the app's port, and the pm2 processes it belongs to."""

    pid: _Count | None = None
    command: _Word | None = None
    pm2: Annotated[list[_Name], Field(max_length=MAX_ITEMS)] = []


class AppDoc(_Answer):
    pm2_daemon: bool | None = None
    processes: Annotated[list[Pm2ProcessDoc], Field(max_length=MAX_ITEMS)] | None = None
    port_open: bool | None = None
    listeners: Annotated[list[ListenerDoc], Field(max_length=MAX_ITEMS)] | None = None


class NginxDoc(_Answer):
    active: bool | None = None
    config_ok: bool | None = None
    config_error: _Message | None = None


class VmReportDoc(_Answer):
    """The parts of labctl-vm-status's report (cloud-init/vm_status.py) that `status` reads."""

    cloud_init: CloudInitDoc | None = None
    app: AppDoc | None = None
    nginx: NginxDoc | None = None


class InstanceMarkerDoc(_Answer):
    """/etc/labctl/instance.json: which lab and VM an instance was launched for."""

    lab: _Name
    vm: _Name


class AnswerMisfitError(Exception):
    """A VM's answer is not JSON, or not the expected shape; `message` says where and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_json(text: str | bytes) -> object:
    """JSON from a VM, or AnswerMisfitError naming the parser's complaint."""
    try:
        return pydantic_core.from_json(text)
    except ValueError as exc:
        raise AnswerMisfitError(f"not JSON ({exc})") from None


def report_of(data: object) -> VmReportDoc:
    """A parsed report checked against the schema, or AnswerMisfitError saying what is wrong."""
    return _validated(VmReportDoc, data)


def marker_of(data: object) -> InstanceMarkerDoc:
    return _validated(InstanceMarkerDoc, data)


def _validated(model: type[Doc], data: object) -> Doc:
    if not isinstance(data, dict):
        raise AnswerMisfitError("it is not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AnswerMisfitError(describe(exc)) from None


_WHY: Final = {
    "int_type": "is not an integer",
    "string_type": "is not a string",
    "bool_type": "is not true or false",
    "list_type": "is not a list",
    "model_type": "is not an object",
    "dict_type": "is not an object",
    "missing": "is missing",
    "greater_than_equal": "is negative",
    "less_than_equal": "is too large",
    "string_too_long": "is too long",
    "too_long": "has too many items",
}


def describe(exc: ValidationError) -> str:
    """The first problem as "<json path> <why>", and how many more there are."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    why = _WHY.get(first["type"], str(first["msg"]).lower())
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{json_path(first['loc'])} {why}{more}"


def json_path(loc: tuple[int | str, ...]) -> str:
    """('app', 'processes', 0, 'restarts') -> app.processes[0].restarts"""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "the answer"
