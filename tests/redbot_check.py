"""Runs REDbot (https://redbot.org, PyPI package `redbot`) against one URL and prints
what it found as JSON on stdout; used by `tests/redbot.rs`.

    python redbot_check.py URL [--header "Name: value"]... [--timeout SECONDS]

This drives REDbot's own `HttpResource` the way its `redbot` CLI does (local addresses
allowed, all active checks on: partial content, conditional requests, content
negotiation), but it can also add request headers, which the CLI cannot (so a ranged
request can be linted directly). The output is the main exchange, the notes on it
(including the ones the active checks add) and, for each active check that ran, its own
exchange and the notes httplint made on that response, all with their levels.

Exit status: 0 when REDbot ran (whatever it found; the caller judges the notes), 2 for a
bad invocation, 3 when REDbot cannot be imported, 4 when the check failed or timed out.
"""

import argparse
import html
import json
import re
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    try:
        from configparser import ConfigParser

        import thor
        import redbot
        from redbot.resource import HttpResource
    except ImportError as why:
        sys.stderr.write(
            f"cannot import REDbot with {sys.executable}: {why}\n"
            "install it with `pip install redbot` (the test uses $MIRRORBOX_PYTHON, else python3)\n"
        )
        return 3

    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            sys.stderr.write(f"bad --header {header!r}, expected 'Name: value'\n")
            return 2
        headers.append((name.strip(), value.strip()))

    config_parser = ConfigParser()
    # As the CLI does: the server under test is on 127.0.0.1.
    config_parser.read_dict({"redbot": {"enable_local_access": "True"}})
    config = config_parser["redbot"]

    resource = HttpResource(config, descend=False)
    resource.set_request(args.url, headers=headers)
    state = {"timed_out": False}

    @thor.events.on(resource)
    def check_done() -> None:
        thor.stop()

    def give_up() -> None:
        state["timed_out"] = True
        resource.stop()
        thor.stop()

    thor.schedule(args.timeout, give_up)
    resource.check()
    thor.run()

    report = {
        "redbot_version": redbot.__version__,
        "url": args.url,
        "exchange": exchange(resource),
        "notes": notes(resource.response.notes),
        "subrequests": [],
    }
    for check_id, sub in resource.subreqs.items():
        if not sub.fetch_started:
            continue
        report["subrequests"].append(
            {
                "check": check_id,
                "exchange": exchange(sub),
                "notes": notes(sub.response.notes),
            }
        )
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")

    if state["timed_out"]:
        sys.stderr.write(f"REDbot did not finish within {args.timeout} s\n")
        return 4
    if not resource.response.complete:
        error = resource.fetch_error
        detail = f"{error.desc} ({error.detail})" if error is not None else "unknown error"
        sys.stderr.write(f"REDbot could not fetch {args.url}: {detail}\n")
        return 4
    return 0


def exchange(fetcher) -> dict:
    response = fetcher.response
    error = fetcher.fetch_error
    return {
        "request": {
            "method": fetcher.request.method,
            "uri": fetcher.request.uri,
            "headers": [[n, v.strip()] for n, v in fetcher.request.headers.text],
        },
        "response": {
            "complete": bool(response.complete),
            "status": response.status_code,
            "phrase": response.status_phrase,
            "headers": [[n, v.strip()] for n, v in response.headers.text],
            "content_length": response.content_length,
        },
        "error": None if error is None else f"{error.desc} ({error.detail})",
    }


def notes(note_list) -> list:
    out = []

    def add(note, parent) -> None:
        out.append(
            {
                "id": note.__class__.__name__,
                "level": note.level.name,
                "category": note.category.name,
                "subject": note.subject,
                "summary": str(note.summary),
                "text": plain(note.detail),
                "parent": parent,
            }
        )
        for subnote in note.subnotes:
            add(subnote, note.__class__.__name__)

    for note in note_list:
        add(note, None)
    return out


def plain(markup) -> str:
    "The note's explanation (HTML) as plain text."
    text = re.sub(r"<[^>]+>", "", str(markup))
    return html.unescape(re.sub(r"\n{3,}", "\n\n", text)).strip()


if __name__ == "__main__":
    sys.exit(main())
