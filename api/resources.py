"""How a route reaches what the API holds: the ``Resources`` built by ``bootstrap.open_api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bootstrap import Resources

__all__ = ["Resources", "ResourcesDep", "resources_of"]


def resources_of(request: Request) -> Resources:
    """The resources, read straight from the app. The hottest route (a program's detail) uses this
    instead of the dependency: solving a dependency costs about 15 µs a request (bench/README.md)."""
    res: Resources = request.app.state.resources
    return res


async def resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain-def dependency in its thread pool, which on a hot
    # route costs a thread hand-off (and a GIL wait of up to 5 ms) per request.
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(resources)]
