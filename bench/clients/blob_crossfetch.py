"""crossfetch's own blob streaming, through the library, as a whole process.

usage: blob_crossfetch.py REF DIGEST SIZE OUT POLICY_FILE
``RegistryClient.open_blob`` verifies size and digest as it streams; the policy file decides
the scheme and trust, exactly as for ``crossfetch pull --config``.
"""

from __future__ import annotations

import sys

from crossfetch import Client, Policy
from crossfetch.oci import Descriptor

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def main() -> None:
    ref, digest, size, out, policy = sys.argv[1:6]
    with Client(Policy.load([policy])) as client:
        rc = client.registry(client.decide(ref))
        with open(out, "wb") as f:
            for chunk in rc.open_blob(Descriptor(LAYER, digest, int(size))):
                f.write(chunk)


if __name__ == "__main__":
    main()
