#!/usr/bin/env python3
"""Validates OCSF records (JSON Lines) against a compiled OCSF schema (JSON, as
`python -m ocsf.compile` of ocsf-lib writes it; fixtures/ocsf/ holds the subset keyledger
needs). Standard library only.

Checks, for every record: the class exists (class_uid); category_uid is the class's
category; type_uid = class_uid * 100 + activity_id; every required attribute is present
(attributes a profile adds count only when metadata.profiles names the profile); every
attribute is defined for its class or object (extra data belongs in `unmapped`); every value
has its type (objects recursively, arrays where is_array); enumerated integers hold a
defined value; objects meet their at_least_one / just_one constraints.

usage: ocsf_validate.py SCHEMA.json RECORDS.jsonl   (exit 0: all valid; 1: problems listed)
"""
import json
import sys

SCALARS = {
    "boolean_t": lambda v: isinstance(v, bool),
    "integer_t": lambda v: isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31,
    "long_t": lambda v: isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63,
    "float_t": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string_t": lambda v: isinstance(v, str),
    "json_t": lambda v: True,
}


def base_type(schema, t):
    """The scalar a named type reduces to (timestamp_t is a long_t, and so on)."""
    seen = set()
    while t not in SCALARS and t in schema["types"] and t not in seen:
        seen.add(t)
        t = schema["types"][t].get("type") or "string_t"
    return t


class Validator:
    def __init__(self, schema):
        self.schema = schema
        self.problems = []

    def fail(self, where, msg):
        self.problems.append(f"{where}: {msg}")

    def attributes(self, where, attrs, value, profiles, constraints=None):
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {type(value).__name__}")
            return
        for name, spec in attrs.items():
            required = spec.get("requirement") == "required"
            if spec.get("profile") and spec["profile"] not in profiles:
                required = False
            if required and name not in value:
                self.fail(where, f"required attribute {name!r} is missing")
        for name, v in value.items():
            spec = attrs.get(name)
            if spec is None:
                self.fail(where, f"attribute {name!r} is not defined here")
                continue
            self.value(f"{where}.{name}", spec, v, profiles)
        for kind, names in (constraints or {}).items():
            present = [n for n in names if n in value]
            if kind == "at_least_one" and not present:
                self.fail(where, f"needs at least one of {names}")
            if kind == "just_one" and len(present) != 1:
                self.fail(where, f"needs exactly one of {names}")

    def value(self, where, spec, v, profiles):
        if spec.get("is_array"):
            if not isinstance(v, list):
                self.fail(where, "expected an array")
                return
            for i, item in enumerate(v):
                self.single(f"{where}[{i}]", spec, item, profiles)
        else:
            self.single(where, spec, v, profiles)

    def single(self, where, spec, v, profiles):
        t = spec.get("type")
        if t == "object":
            # The generic object (`unmapped`): any JSON object, its content not defined.
            if not isinstance(v, dict):
                self.fail(where, "expected an object")
            return
        if t in self.schema["objects"]:
            obj = self.schema["objects"][t]
            self.attributes(where, obj["attributes"], v, profiles, obj.get("constraints"))
            return
        scalar = base_type(self.schema, t)
        check = SCALARS.get(scalar)
        if check is None:
            self.fail(where, f"unknown type {t!r}")
        elif not check(v):
            self.fail(where, f"{v!r} is not a {t}")
        enum = spec.get("enum")
        if enum and scalar in ("integer_t", "long_t") and str(v) not in enum:
            self.fail(where, f"{v!r} is not one of {sorted(enum, key=int)}")

    def record(self, where, rec):
        if not isinstance(rec, dict):
            self.fail(where, "not a JSON object")
            return
        cls = next((c for c in self.schema["classes"].values()
                    if c.get("uid") == rec.get("class_uid")), None)
        if cls is None:
            self.fail(where, f"class_uid {rec.get('class_uid')!r} is not a class of this schema")
            return
        where = f"{where} ({cls['name']})"
        profiles = set((rec.get("metadata") or {}).get("profiles") or [])
        self.attributes(where, cls["attributes"], rec, profiles, cls.get("constraints"))
        cat = cls["attributes"].get("category_uid", {}).get("enum", {})
        if cat and str(rec.get("category_uid")) not in cat:
            self.fail(where, f"category_uid {rec.get('category_uid')!r} is not this class's")
        if isinstance(rec.get("activity_id"), int) and \
                rec.get("type_uid") != cls["uid"] * 100 + rec["activity_id"]:
            self.fail(where, "type_uid is not class_uid * 100 + activity_id")
        if rec.get("metadata", {}).get("version") != self.schema["version"]:
            self.fail(where, f"metadata.version is not {self.schema['version']}")


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    schema = json.load(open(argv[1]))
    v = Validator(schema)
    n = 0
    with open(argv[2]) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            n += 1
            try:
                rec = json.loads(line)
            except ValueError as e:
                v.fail(f"line {i}", f"not JSON: {e}")
                continue
            v.record(f"line {i}", rec)
    for p in v.problems:
        print(p)
    print(f"{n} records, {len(v.problems)} problems (OCSF {schema['version']})")
    return 1 if v.problems or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
