"""gunicorn settings for bench/pages.py: each worker answers AWS with the bench's fake
(the pages' calls are counted as they would be made to AWS, none leaves the machine)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def post_worker_init(worker):
    import pages  # bench/pages.py: Django is set up already by the WSGI app

    pages.FakeAws().install()
