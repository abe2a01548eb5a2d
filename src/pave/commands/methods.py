"""``pave methods``: the registered methods, what each adds and what it needs."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "methods",
        help="list the registered methods (patch.method, pave flops --method, pave quickstart --methods)",
        description="The registered methods: the module each adds, whether it reads a side channel and trains LoRA.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.methods import methods

    rows = [
        {
            "method": m.name,
            "label": m.label,
            "kind": m.kind or "-",
            "side channel": m.side,
            "LoRA": "yes" if m.lora else "no",
            "settings": ", ".join(f"{k}={v}" for k, v in m.settings.items()) or "-",
            "aliases": ", ".join(m.aliases) or "-",
        }
        for m in methods()
    ]
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    header = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in header]
    for line in [dict(zip(header, header, strict=True)), *rows]:
        sys.stdout.write("  ".join(line[h].ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    return 0
