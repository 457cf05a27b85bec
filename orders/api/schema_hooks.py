"""drf-spectacular post-processing of the served schema."""


def request_bodies_required(result, generator, request, public):
    """Every POST of the API needs its body (an empty one is invalid_json or validation_error):
    say so, so that clients and schemathesis do not send none."""
    for item in result.get("paths", {}).values():
        body = item.get("post", {}).get("requestBody")
        if body is not None:
            body["required"] = True
    return result
