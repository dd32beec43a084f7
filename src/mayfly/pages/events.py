"""The organiser's view of an event: its accounts, their Workers and claim state; ending it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.pages.web import form, in_thread, page, redirect, services


@page
async def end_event(request: Request) -> Response:
    who, _ = await form(request)
    if who.session is None:
        return redirect(request, "/login?next=/dashboard")
    user = who.session.user
    event_id = request.path_params["event_id"]
    # Only its organiser may end it; anyone else gets the same 404 as an unknown event.
    await in_thread(
        request, lambda svc: svc.provisioning.events.require_organiser(event_id, user.email)
    )
    await services(request).provisioning.events.end(event_id, user.email)
    return redirect(request, f"/dashboard?ended={event_id}#events")


routes = [Route("/dashboard/events/{event_id}/end", end_event, methods=["POST"])]
