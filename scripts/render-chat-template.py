#!/usr/bin/env python3
"""Renders chat templates as transformers' apply_chat_template does (jinja2 with its environment, filters and
globals), the reference models/chat-template.ts is tested against.

stdin: one JSON object {template, messages, add_generation_prompt, bos_token?, eos_token?, pad_token?, unk_token?,
now?} -> stdout: the rendered text. Or a JSON list of such objects -> stdout: a JSON list of {"text": ...} or
{"error": ...}, one per case. `now` (ISO 8601, local time) fixes what strftime_now reads.
"""
import json
import sys
from datetime import datetime

import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' tojson: json.dumps without HTML escaping, unlike jinja2's own filter
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise TemplateError(message)


def render(case):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    now = datetime.fromisoformat(case["now"]) if case.get("now") else None
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: (now or datetime.now()).strftime(fmt)
    specials = {k: case[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if case.get(k) is not None}
    return env.from_string(case["template"]).render(
        messages=case["messages"],
        tools=None,
        documents=None,
        add_generation_prompt=case["add_generation_prompt"],
        **specials,
    )


def main():
    request = json.load(sys.stdin)
    if isinstance(request, dict):
        sys.stdout.write(render(request))
        return
    results = []
    for case in request:
        try:
            results.append({"text": render(case)})
        except Exception as e:  # noqa: BLE001 - every failure is a result the caller compares
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
