"""Strict input: a request's JSON body is decoded exactly as declared, numbers in the query are
plain whole numbers, and every refusal names the field and says why.

Litestar converts its input leniently (msgspec's `strict=False`: "2" becomes 2, "1e3" becomes
1000), which suits forms but lets a mistyped JSON request through as something else. So before a
handler's arguments are parsed, its JSON body is decoded strictly against the declared struct
(bodies are `Body` structs, closed to unknown fields) and its whole-number query values checked.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import BodyKwarg, ParameterKwarg


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A JSON request body: a misspelt option is refused, never silently ignored."""


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
_AT = re.compile(r" - at `\$\.?(?P<key>[^`]*)`$")
_TYPE_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "a list",
}


async def check_request(request: Request[Any, Any, Any]) -> None:
    """A before_request hook: refuse what a lenient conversion would let through."""
    problems: list[dict[str, str]] = []
    parameters = request.route_handler.parsed_fn_signature.parameters
    for field in parameters.values():
        kwarg = field.kwarg_definition
        if field.name == "data" and _is_json_struct(field.annotation, kwarg):
            problems += _body_problems(await request.body(), field.annotation)
        elif field.name not in request.path_params and _takes_whole_number(field):
            name = _public_name(field)
            for raw in request.query_params.getall(name, []):
                if not _WHOLE_NUMBER.fullmatch(raw.strip()):
                    problems.append(
                        {"key": name, "message": f"must be a whole number, like 3, not {raw!r}"}
                    )
    if problems:
        raise ValidationException(detail="The request is not valid.", extra=problems)


def _public_name(field: Any) -> str:
    """The name a query parameter has in the URL (`pageSize`), not in Python (`page_size`)."""
    kwarg = field.kwarg_definition
    return (isinstance(kwarg, ParameterKwarg) and (kwarg.query or kwarg.name)) or field.name


def _is_json_struct(annotation: Any, kwarg: Any) -> bool:
    is_json = not isinstance(kwarg, BodyKwarg) or kwarg.media_type == RequestEncodingType.JSON
    return is_json and isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _takes_whole_number(field: Any) -> bool:
    types = [inner.annotation for inner in field.inner_types] if field.is_union else []
    return any(kind is int for kind in [field.annotation, *types])


def _body_problems(raw: bytes, struct: type[msgspec.Struct]) -> list[dict[str, str]]:
    try:
        msgspec.json.decode(raw, type=struct)  # strict: no coercion of "2" into 2
    except msgspec.ValidationError as exc:
        return [_problem(str(exc))]
    except msgspec.DecodeError as exc:
        return [{"key": "body", "message": f"is not valid JSON ({exc})"}]
    except RecursionError:
        return [{"key": "body", "message": "is nested too deeply"}]
    return []


def _problem(text: str) -> dict[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.count`" as a field and a reason."""
    key = ""
    if match := _AT.search(text):
        key, text = match["key"], text[: match.start()]
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", text):
        key = ".".join(filter(None, (key, found[1])))
        return {"key": key, "message": "is not a field of this request; check its spelling"}
    if found := re.fullmatch(r"Object missing required field `(.+)`", text):
        return {"key": ".".join(filter(None, (key, found[1]))), "message": "is required"}
    return {"key": key or "body", "message": reason(text)}


def reason(text: str) -> str:
    """msgspec's and Litestar's wording of a problem, as the end of a sentence about a field."""
    if found := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", text):
        expected = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in found[1].split(" | "))
        return f"must be {expected}, not {_TYPE_NAMES.get(found[2], found[2])}"
    if found := re.fullmatch(r"Expected `([^`]+)` (of length )?([<>]=?) (\S+)", text):
        unit = " characters" if found[2] else ""
        words = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
        return f"must be {words[found[3]]} {found[4]}{unit}"
    return text[:1].lower() + text[1:]


def describe(exc: ValidationException, request: Request[Any, Any, Any] | None = None) -> str:
    """One sentence naming each field that was refused (as the request spells it) and why."""
    names: dict[str, str] = {}
    if request is not None:
        parameters = request.route_handler.parsed_fn_signature.parameters
        names = {field.name: _public_name(field) for field in parameters.values()}
    problems = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or "")
            field = names.get(key, key) or "the request"
            problems.append(f"{field} {reason(str(item.get('message', 'is not valid')))}")
    return "; ".join(problems) + "." if problems else "The request is not valid."
