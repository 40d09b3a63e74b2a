"""Test launcher: `faultnode.py EXT SECONDS serve -c CONFIG` runs the real gomirror-proxy
with its store pausing SECONDS after it installed a version's EXT file, so a test can
SIGKILL or SIGTERM the node at that exact point of a write."""

import sys
import time

from gomirror_proxy import cli
from gomirror_proxy.store.disk import DiskStore
from gomirror_proxy.store.s3 import S3Store


def pause_after(cls, ext: str, seconds: float) -> None:
    install = cls._install_version_file

    def paused(self, em, ev, file_ext, src):
        install(self, em, ev, file_ext, src)
        if file_ext == ext:
            time.sleep(seconds)

    cls._install_version_file = paused


if __name__ == "__main__":
    ext, seconds = sys.argv[1], float(sys.argv[2])
    for store_class in (DiskStore, S3Store):
        pause_after(store_class, ext, seconds)
    sys.exit(cli.main(sys.argv[3:]))
