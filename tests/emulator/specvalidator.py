"""Request-body validation against the published ACR Tasks swagger.

The emulator must accept exactly what the service's contract accepts, not what
one client happens to send, so every ARM request body is checked against the
swagger file of its api-version (reference/spec/<version>-containerregistry_build.json).
This module loads such a file, resolves `$ref`, `allOf` and discriminators
(`discriminator` on a base model, `x-ms-discriminator-value` on its subtypes),
and walks a JSON body against a named definition. It owns nothing but the
parsed spec; it is pure and thread-safe after construction.

What it does with a body, and why:
  - unknown members are rejected unless the schema declares
    `additionalProperties` (swagger models are closed for ARM RPs, whose
    JSON.NET deserializers fail on unknown members), with a JSON.NET-style
    message naming the path: "Could not find member 'x' on object of type 'T'.
    Path 'properties.x'.";
  - wrong JSON types and missing required members are rejected the same way
    (ARM code InvalidRequestContent);
  - enum, range, length and pattern violations are rejected with ACR's own
    code InvalidInputValue;
  - `readOnly` members sent by a client are dropped, as ARM ignores them;
  - enum values are matched without regard to case and returned in their
    canonical spelling (`linux` -> `Linux`, acr-arm-api.md §2);
  - JSON null counts as "absent" (ARM's deserializers treat it so; the
    2019 QuickTask example sends `"identity": null`);
  - optionally, schema `default`s are filled in (used for PUT bodies, so a
    stored resource echoes e.g. `isPushEnabled: true` like the examples do).

The 2025 file references common-types v6 (`TrackedResource`, `ProxyResource`)
by relative path; the small subset needed is embedded below (COMMON_TYPES).
"""

import json
import re


class ValidationError(Exception):
    """A body that the service would refuse with 400. `code` is the ARM error
    code, `path` the JSON path of the offending member (also ARM `target`)."""

    def __init__(self, code, message, path):
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


# The subset of Azure/azure-rest-api-specs common-types/resource-management/v6/types.json
# that the 2025-03-01-preview file refers to.
COMMON_TYPES = {
    "Resource": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "name": {"type": "string", "readOnly": True},
            "type": {"type": "string", "readOnly": True},
            "systemData": {"$ref": "types.json#/definitions/systemData", "readOnly": True},
        },
    },
    "TrackedResource": {
        "type": "object",
        "properties": {
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "location": {"type": "string"},
        },
        "required": ["location"],
        "allOf": [{"$ref": "types.json#/definitions/Resource"}],
    },
    "ProxyResource": {
        "type": "object",
        "allOf": [{"$ref": "types.json#/definitions/Resource"}],
    },
    "systemData": {
        "type": "object",
        "readOnly": True,
        "properties": {
            "createdBy": {"type": "string"},
            "createdByType": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "lastModifiedBy": {"type": "string"},
            "lastModifiedByType": {"type": "string"},
            "lastModifiedAt": {"type": "string", "format": "date-time"},
        },
    },
    "ErrorResponse": {"type": "object", "additionalProperties": True},
}

_INT32 = (-(2 ** 31), 2 ** 31 - 1)


def _join(path, member):
    return member if not path else f"{path}.{member}"


class Spec:
    """One api-version's swagger: definitions, subtypes per discriminated base,
    and the operations (method, path template, body definition, path-parameter
    rules) keyed by operationId."""

    def __init__(self, filename):
        with open(filename, encoding="utf-8") as f:
            self.raw = json.load(f)
        self.defs = dict(self.raw["definitions"])
        # Common types live in a separate namespace so a local definition of the
        # same name (2019 has its own `Resource`) is never shadowed.
        self.common = COMMON_TYPES
        self.subtypes = self._index_subtypes()
        self.operations = self._index_operations()

    # -- loading ------------------------------------------------------------

    def _ref_target(self, ref):
        """Return (name, schema) for a $ref string, local or common-types."""
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/definitions/"):
            return name, self.defs[name]
        if "types.json#/definitions/" in ref:
            return name, self.common[name]
        if ref.startswith("#/parameters/"):
            return name, self.raw["parameters"][name]
        raise KeyError(f"unsupported $ref {ref}")

    def _index_subtypes(self):
        """base definition name -> {lower(discriminator value): subtype name}."""
        out = {}
        for name, schema in self.defs.items():
            for parent in schema.get("allOf", []):
                ref = parent.get("$ref", "")
                if not ref.startswith("#/definitions/"):
                    continue
                base = ref.rsplit("/", 1)[-1]
                if "discriminator" in self.defs.get(base, {}):
                    value = schema.get("x-ms-discriminator-value", name)
                    out.setdefault(base, {})[value.lower()] = name
        return out

    def _index_operations(self):
        ops = {}
        for template, item in self.raw["paths"].items():
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = []
                for p in op.get("parameters", []):
                    if "$ref" in p:
                        ref = p["$ref"]
                        if "types.json#/parameters/" in ref:
                            continue  # api-version, subscriptionId, resourceGroupName
                        p = self._ref_target(ref)[1]
                    params.append(p)
                body = next((p for p in params if p.get("in") == "body"), None)
                body_def = None
                if body is not None:
                    body_def = body["schema"]["$ref"].rsplit("/", 1)[-1]
                ops[op["operationId"]] = {
                    "method": method.upper(),
                    "template": template,
                    "body": body_def,
                    "body_required": bool(body and body.get("required")),
                    "path_params": {p["name"]: p for p in params if p.get("in") == "path"},
                    "responses": sorted(c for c in op["responses"] if c != "default"),
                    "lro": bool(op.get("x-ms-long-running-operation")),
                }
        return ops

    # -- validation ---------------------------------------------------------

    def check_path_param(self, operation_id, name, value):
        """Raise ValidationError if a path parameter breaks the spec's
        length/pattern rule for that operation (§2 name rules)."""
        p = self.operations[operation_id]["path_params"].get(name)
        if p is None:
            return
        lo, hi = p.get("minLength"), p.get("maxLength")
        pattern = p.get("pattern")
        bad = (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi) \
            or (pattern is not None and not re.search(pattern, value))
        if bad:
            rule = f"{lo} to {hi} characters" if lo is not None else "a valid length"
            raise ValidationError(
                "InvalidResourceName",
                f"The {name} '{value}' is invalid: it must be {rule} long and match "
                f"the pattern '{pattern}'.", name)

    def validate(self, def_name, body, fill_defaults=False):
        """Validate `body` against definition `def_name`; return a normalised
        deep copy (read-only members dropped, enums canonical, nulls removed,
        defaults filled when asked). Raise ValidationError on the first fault."""
        if not isinstance(body, dict):
            raise ValidationError("InvalidRequestContent",
                                  f"The request content must be a JSON object of type '{def_name}'.", "")
        return self._check({"$ref": f"#/definitions/{def_name}"}, body, "", fill_defaults)

    def _collect(self, schema):
        """Flatten a model: (properties, required, additionalProperties,
        discriminator) over its allOf chain."""
        props, required, addl, disc = {}, set(), None, None
        for parent in schema.get("allOf", []):
            _, pschema = self._ref_target(parent["$ref"]) if "$ref" in parent else (None, parent)
            pp, pr, pa, pd = self._collect(pschema)
            props.update(pp)
            required |= pr
            addl = pa if addl is None else addl
            disc = disc or pd
        props.update(schema.get("properties", {}))
        required |= set(schema.get("required", []))
        if "additionalProperties" in schema:
            addl = schema["additionalProperties"]
        disc = schema.get("discriminator", disc)
        return props, required, addl, disc

    def _check(self, schema, value, path, fill):
        type_name = None
        while "$ref" in schema:
            type_name, target = self._ref_target(schema["$ref"])
            # Member-level keywords (readOnly, default) sit next to the $ref;
            # the model's own keywords come from the target.
            schema = target
        if value is None:
            return None
        kind = schema.get("type") or ("object" if ("properties" in schema or "allOf" in schema
                                                    or "additionalProperties" in schema) else None)
        if "enum" in schema:
            return self._check_enum(schema, value, path)
        if kind == "object":
            return self._check_object(schema, type_name, value, path, fill)
        if kind == "array":
            if not isinstance(value, list):
                raise self._type_error(value, "array", path)
            return [self._check(schema.get("items", {}), v, f"{path}[{i}]", fill)
                    for i, v in enumerate(value)]
        if kind == "string":
            if not isinstance(value, str):
                raise self._type_error(value, "String", path)
            lo, hi, pat = schema.get("minLength"), schema.get("maxLength"), schema.get("pattern")
            if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi) \
                    or (pat is not None and not re.search(pat, value)):
                raise ValidationError("InvalidInputValue",
                                      f"The value '{value}' of '{path}' is not valid.", path)
            return value
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._type_error(value, "Int32", path)
            if schema.get("format", "int32") == "int32" and not _INT32[0] <= value <= _INT32[1]:
                raise self._type_error(value, "Int32", path)
            self._check_range(schema, value, path)
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(value, "Double", path)
            self._check_range(schema, value, path)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self._type_error(value, "Boolean", path)
            return value
        return value  # untyped schema: anything goes

    def _check_enum(self, schema, value, path):
        if not isinstance(value, str):
            raise self._type_error(value, "String", path)
        for allowed in schema["enum"]:
            if allowed.lower() == value.lower():
                return allowed
        raise ValidationError(
            "InvalidInputValue",
            f"The value '{value}' of '{path}' is not valid. Allowed values: "
            f"{', '.join(schema['enum'])}.", path)

    def _check_range(self, schema, value, path):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValidationError(
                "InvalidInputValue",
                f"The value '{value}' of '{path}' is out of range [{lo}, {hi}].", path)

    def _check_object(self, schema, type_name, value, path, fill):
        if not isinstance(value, dict):
            raise self._type_error(value, type_name or "Object", path)
        props, required, addl, disc = self._collect(schema)
        if disc and type_name in self.subtypes:
            # A discriminated base: the member names the concrete model.
            tag = value.get(disc)
            if tag is None:
                raise ValidationError(
                    "InvalidRequestContent",
                    f"Required property '{disc}' not found in JSON. Path '{path}'.",
                    _join(path, disc))
            if not isinstance(tag, str) or tag.lower() not in self.subtypes[type_name]:
                raise ValidationError(
                    "InvalidRequestContent",
                    f"Type '{tag}' is not a known '{type_name}' type. Known types: "
                    f"{', '.join(sorted(self.defs[n].get('x-ms-discriminator-value', n) for n in self.subtypes[type_name].values()))}. "
                    f"Path '{_join(path, disc)}'.", _join(path, disc))
            sub = self.subtypes[type_name][tag.lower()]
            sub_schema = self.defs[sub]
            out = self._check_object(sub_schema, sub, value, path, fill)
            out[disc] = sub_schema.get("x-ms-discriminator-value", sub)
            return out

        out = {}
        for key, member in value.items():
            mpath = _join(path, key)
            if key in props:
                mschema = props[key]
                if mschema.get("readOnly"):
                    continue  # ARM ignores read-only members a client sends
                checked = self._check(mschema, member, mpath, fill)
            elif key == disc:
                checked = member
            elif addl is True or isinstance(addl, dict):
                checked = self._check(addl, member, mpath, fill) if isinstance(addl, dict) else member
            else:
                raise ValidationError(
                    "InvalidRequestContent",
                    f"Could not find member '{key}' on object of type '{type_name or 'Object'}'. "
                    f"Path '{mpath}'.", mpath)
            if checked is not None:
                out[key] = checked
        for key in sorted(required):
            if key not in out and not props.get(key, {}).get("readOnly"):
                raise ValidationError(
                    "InvalidRequestContent",
                    f"Required property '{key}' not found in JSON. Path '{path}'.",
                    _join(path, key))
        if fill:
            for key, mschema in props.items():
                if key not in out and "default" in mschema and not mschema.get("readOnly"):
                    out[key] = mschema["default"]
        return out

    @staticmethod
    def _type_error(value, expected, path):
        shown = json.dumps(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return ValidationError(
            "InvalidRequestContent",
            f"Error converting value {shown} to type '{expected}'. Path '{path}'.", path)


def load_specs(spec_dir):
    """api-version -> Spec for every swagger file in spec_dir."""
    import os
    specs = {}
    for fn in sorted(os.listdir(spec_dir)):
        if fn.endswith("-containerregistry_build.json"):
            version = fn[: -len("-containerregistry_build.json")]
            specs[version] = Spec(os.path.join(spec_dir, fn))
    return specs
