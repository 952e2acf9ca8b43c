"""The tuner's worker process: `python -m lathe.tuner.worker FD` serves jobs on socket FD."""

import sys
from multiprocessing.connection import Connection

from lathe.tuner.measure import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
