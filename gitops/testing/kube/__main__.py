"""``python -m gitops.testing.kube --kubeconfig PATH [--port N]``: serve until SIGTERM/SIGINT.

The kubeconfig is written only once the server is ready; its appearance is the signal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from gitops.testing.kube.emulator import KubeEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gitops.testing.kube", description="Run the Kubernetes API emulator on 127.0.0.1.")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig once ready")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--no-controllers", action="store_true", help="do not simulate workload status or namespace defaults")
    parser.add_argument("--null-empty-bytes", action="store_true",
                        help='serve empty Secret data / ConfigMap binaryData values as null, not ""')
    args = parser.parse_args(argv)
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with KubeEmulator(args.kubeconfig, args.port, controllers=not args.no_controllers,
                      null_empty_bytes=args.null_empty_bytes) as emulator:
        print(f"kube emulator serving {emulator.url}; kubeconfig {emulator.kubeconfig_path}", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
