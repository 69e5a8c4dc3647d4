#!/usr/bin/env python3
"""Drive the real Helm renderer (helm-python-sdk: Helm's own Go library) for the chart tests.

Reads a JSON list of jobs on stdin and writes a JSON list of results, one per job, on stdout:

  {"op": "render", "chart": DIR, "name": RELEASE, "namespace": NS,
   "set": ["domain=example.com", ...],      # `helm --set` expressions, parsed by Helm's strvals
   "values": {...},                         # a values document, merged under the --set values
   "skip_schema": false}                    # true: as `helm install --skip-schema-validation`
      -> {"ok": {"templates/x.yaml": "rendered text", ...}} or {"error": "message"}
  {"op": "lint", "chart": DIR, "namespace": NS, "set": [...], "values": {...}}
      -> {"ok": {"messages": [...], "errors": [...], ...}} (Helm's lint report)
  {"op": "version"} -> {"ok": {"helm": "...", "helm_python": "..."}}

Helm validates the values against the chart's values.schema.json before rendering; schema and
template errors (`required`, `fail`) are results, not crashes. Exit status 3 with a message on
stderr when helm-python-sdk is not installed.
"""

import json
import os
import shutil
import sys
import tempfile

try:
    import helm_python
except ImportError as e:  # pragma: no cover - the test reports this
    sys.stderr.write(
        f"helm-python-sdk is not installed ({e}); install it with: pip install helm-python-sdk\n"
    )
    sys.exit(3)


def merge(dst, src):
    """Deep-merge src into dst (src wins), as Helm merges -f then --set."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def job_values(job):
    values = json.loads(json.dumps(job.get("values") or {}))
    sets = job.get("set") or []
    if sets:
        # Helm parses every --set flag into one map, splitting each on commas: joining them with
        # commas is the same parse.
        merge(values, helm_python.parse_set_string(",".join(sets)))
    return values


_WITHOUT_SCHEMA = {}


def chart_without_schema(chart):
    """A copy of the chart without values.schema.json: what Helm renders with
    --skip-schema-validation, so the templates' own checks can be tested behind the schema."""
    if chart not in _WITHOUT_SCHEMA:
        tmp = tempfile.mkdtemp(prefix="exdns-chart-")
        dst = os.path.join(tmp, os.path.basename(os.path.normpath(chart)))
        shutil.copytree(chart, dst, ignore=shutil.ignore_patterns("values.schema.json"))
        _WITHOUT_SCHEMA[chart] = (tmp, dst)
    return _WITHOUT_SCHEMA[chart][1]


def strip_chart_name(rendered):
    """`exdns/templates/x.yaml` -> `templates/x.yaml`."""
    return {k.split("/", 1)[1] if "/" in k else k: v for k, v in rendered.items()}


def run(job):
    op = job.get("op")
    if op == "version":
        return {"helm": helm_python.helm_sdk_version(), "helm_python": helm_python.__version__}
    if op == "render":
        path = job["chart"]
        if job.get("skip_schema"):
            path = chart_without_schema(path)
        chart = helm_python.Chart.load(path)
        out = chart.render(
            job_values(job),
            name=job.get("name", "exdns"),
            namespace=job.get("namespace", "default"),
            is_install=True,
        )
        return strip_chart_name(out)
    if op == "lint":
        return helm_python.lint(
            job["chart"],
            job_values(job),
            strict=job.get("strict", True),
            namespace=job.get("namespace", "default"),
        )
    raise ValueError(f"unknown op {op!r}")


def main():
    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        try:
            results.append({"ok": run(job)})
        except helm_python.HelmError as e:
            results.append({"error": str(e)})
    for tmp, _ in _WITHOUT_SCHEMA.values():
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
