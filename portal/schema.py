"""The answers every API operation may give, written into the OpenAPI document once.

Each operation documents its own answers; these hold for all of them, whatever the
view: 400 when the request cannot be read at all (portal.middleware, portal.parsers),
401 without a valid token or session, 403 when refused (a token's scope, a role),
404 for an object that is not there (operations with path parameters) and 415 for a
body in a media type the API does not read (operations with a body).
"""

ERROR_SCHEMA = "RequestError"
COMMON = {
    "400": "The request cannot be read: a query string or body that is not UTF-8, holds "
    "NUL characters, is too long, too big or nested too deep, or is not valid JSON.",
    "401": "No valid token (`Authorization: Token <key>`) or signed-in session.",
    "403": "Refused; `detail` says why.",
}
NOT_FOUND = "No such object, or none the caller may see."
UNSUPPORTED = "The body is in a media type the API does not read (JSON, or a form)."


def common_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: adds COMMON (and 404, 415 where they apply)
    to each operation that does not document that status itself."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA] = {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        "required": ["detail"],
    }
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            answers = dict(COMMON)
            if "{" in path:
                answers["404"] = NOT_FOUND
            if "requestBody" in operation:
                answers["415"] = UNSUPPORTED
            responses = operation.setdefault("responses", {})
            for status, description in answers.items():
                responses.setdefault(status, {"description": description, "content": error})
    return result
