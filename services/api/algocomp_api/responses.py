"""A response model serialised once, for the routes read most (GET /runs, GET /runs/{id}).

A route that returns a model has FastAPI validate it again against the route's response_model and then serialise
it; for a page of 20 runs that was about a fifth of an API process's CPU under load (py-spy, issue 11). Returning
`model_json(model)` sends pydantic's own JSON of the model (built and validated once, by the route); the route
keeps its response_model, which documents the answer in OpenAPI.
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def model_json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
