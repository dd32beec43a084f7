"""The account's workers.dev subdomain (its name, fixed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access
from mayfly.api.envelope import failure, json_body, ok
from mayfly.api.openapi import (
    BOOLEAN,
    STRING,
    obj,
    operation,
)
from mayfly.api.workers.common import (
    SUBDOMAIN,
    TAG,
)
from mayfly.errors import ValidationError
from mayfly.services.identity.accounts import NAME_RE


def check_subdomain_name(name: str) -> None:
    """400 for a name no account could have (a subdomain is a DNS label), before 10031's 'taken'."""
    if not NAME_RE.match(name):
        raise ValidationError(
            f"The subdomain {name!r} is not a valid name: subdomains are 1-63 lowercase letters, "
            "digits and hyphens, not starting or ending with a hyphen (a DNS label)."
        )


@operation(
    "GET",
    "The account's workers subdomain",
    operation_id="worker-subdomain-get-subdomain",
    tag=TAG,
    result=SUBDOMAIN,
)
async def get_account_subdomain(request: Request) -> Response:
    _, account = await account_access(request)
    return ok({"subdomain": account.subdomain})


@operation(
    "GET",
    "Is a subdomain free? (an account's subdomain is its name)",
    tag=TAG,
    result=obj({"available": BOOLEAN, "owned": BOOLEAN}),
)
async def check_subdomain(request: Request) -> Response:
    """W4: is a subdomain free? Every account's subdomain is its (unique) name."""
    _, account = await account_access(request)
    wanted = request.path_params["name"]
    check_subdomain_name(wanted)
    if wanted == account.subdomain:
        return ok({"available": False, "owned": True})
    return failure(10031, f"The subdomain {wanted!r} is taken or reserved.", 409)


@operation(
    "PUT",
    "Set the account's subdomain (only to its current name: 10031 otherwise)",
    operation_id="worker-subdomain-create-subdomain",
    tag=TAG,
    body={"application/json": obj({"subdomain": STRING}, "subdomain")},
    body_required=True,
    result=SUBDOMAIN,
)
async def put_account_subdomain(request: Request) -> Response:
    _, account = await account_access(request)
    body = await json_body(request)
    if not isinstance(body.get("subdomain"), str):
        raise ValidationError('Send the subdomain as a string: {"subdomain": "<name>"}.')
    check_subdomain_name(body["subdomain"])
    if body.get("subdomain") == account.subdomain:
        return ok({"subdomain": account.subdomain})
    return failure(
        10031,
        f"An account's subdomain is its name ({account.subdomain!r}) and cannot be changed.",
        409,
    )
