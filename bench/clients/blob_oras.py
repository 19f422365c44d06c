"""oras-py peer: stream one blob to a file with OrasClient.download_blob (no digest check).

usage: blob_oras.py SCHEME HOST REPO DIGEST OUT [CA_FILE]
Runs in the throwaway peer venv, never in crossfetch's.
"""

import sys

import oras.client  # type: ignore[import-not-found]


def main() -> None:
    scheme, host, repo, digest, out = sys.argv[1:6]
    ca = sys.argv[6] if len(sys.argv) > 6 else True
    client = oras.client.OrasClient(hostname=host, insecure=scheme == "http", tls_verify=ca)
    client.download_blob(f"{host}/{repo}", digest, out)


if __name__ == "__main__":
    main()
