"""How every launch through the API is answered, whichever endpoint asked (a launch, a
promotion, a rollback): its Idempotency-Key checked, a launch asked again answered with
its run, the one launch path asked, a refusal said with its reason."""

from collections.abc import Callable
from dataclasses import replace

from rest_framework import status
from rest_framework.response import Response

from apps.audit.constants import Via
from apps.catalog.parameters import ParameterError
from apps.runs import services
from apps.runs.api.serializers import LockHolderSerializer, RunSerializer
from apps.runs.services import LaunchRefused, LaunchRequest
from apps.runs.services.idempotency import HEADER, key_problem

REPLAYED_HEADER = "Idempotent-Replayed"


def run_answer(run) -> Response:
    """201 with a new run; 200 with the run a launch asked again had created."""
    if run.replayed:
        return Response(RunSerializer(run).data, headers={REPLAYED_HEADER: "true"})
    # Created by this request: the serializer need not ask what followed it up.
    data = RunSerializer(run, context={"created": True}).data
    return Response(data, status=status.HTTP_201_CREATED)


def refused_answer(exc: LaunchRefused) -> Response:
    body = {"detail": exc.reason}
    if exc.holder is not None:
        body["lock"] = LockHolderSerializer(exc.holder).data
    if exc.missing is not None:
        body["missing"] = exc.missing
    if exc.queue is not None:
        body["queue"] = exc.queue
    if exc.field is not None and exc.status in (400, 422):
        body["errors"] = {exc.field: [exc.reason]}
    return Response(body, status=exc.status)


def launch_answer(
    request, *, kind: str, values: dict, build: Callable[[], LaunchRequest | Response]
) -> Response:
    """Launch what `build()` makes of the request (or answer the 4xx it returns); with an
    Idempotency-Key, a request asked again is answered with its run first, before
    anything else is looked up. `kind` and `values` (the validated body, and the slugs
    of the path) are what the key's fingerprint is made of."""
    key = request.headers.get(HEADER)
    if key is not None and (why := key_problem(key)):
        return Response({"detail": why, "errors": {HEADER: [why]}}, status=400)
    fingerprint = services.launch_fingerprint(kind, values)
    try:
        if key and (
            run := services.launch_key_replay(
                user=request.user, key=key, fingerprint=fingerprint, via=Via.API, request=request
            )
        ):
            return run_answer(run)
        req = build()
        if isinstance(req, Response):
            return req
        run = services.run_launch(replace(req, idempotency_key=key or "", fingerprint=fingerprint))
    except ParameterError as exc:
        return Response(
            {"detail": "Parameters do not fit the form.", "errors": {"parameters": exc.errors}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    except LaunchRefused as exc:
        return refused_answer(exc)
    return run_answer(run)
