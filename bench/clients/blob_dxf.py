"""python-dxf peer: stream one blob to a file (DXF.pull_blob verifies the digest).

usage: blob_dxf.py SCHEME HOST REPO DIGEST OUT [CA_FILE]
Runs in the throwaway peer venv, never in crossfetch's.
"""

import sys

from dxf import DXF  # type: ignore[import-not-found]


def main() -> None:
    scheme, host, repo, digest, out = sys.argv[1:6]
    ca = sys.argv[6] if len(sys.argv) > 6 else True
    dxf = DXF(host, repo, insecure=scheme == "http", tlsverify=ca)
    with open(out, "wb") as f:
        for chunk in dxf.pull_blob(digest):
            f.write(chunk)


if __name__ == "__main__":
    main()
