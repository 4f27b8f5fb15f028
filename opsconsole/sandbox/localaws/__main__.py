"""``python -m opsconsole.sandbox.localaws [-H HOST] [-p PORT]``: serve the local AWS."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from werkzeug.serving import run_simple


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="opsconsole.sandbox.localaws")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument(
        "--lambda-model",
        action="store_true",
        help="answer with real Lambda's latency, update window and 15/s limit "
        "(lambda_model.py; LOCALAWS_LAMBDA_MODEL=1)",
    )
    args = parser.parse_args(argv)
    if args.lambda_model:
        os.environ["LOCALAWS_LAMBDA_MODEL"] = "1"
    # moto builds ARNs and callbacks from these; set before its modules are imported.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    os.environ.setdefault("MOTO_HOST", args.host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("LOCALAWS_LOG_REQUESTS", "") not in {"1", "true", "yes"}:
        # A line per request costs more CPU than a warm invoke; ask for it when debugging.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.moto_server.threaded_moto_server import MotoRequestHandler

    from opsconsole.sandbox.localaws.app import LocalAws
    from opsconsole.sandbox.localaws.config import from_environment

    app = LocalAws(from_environment(host=args.host, port=args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1:])
