"""Independent test infrastructure: never uses crossfetch to put content anywhere.

- ``certs``: :func:`make_pki` — trusted, untrusted, expired, wrong-host, self-signed, client certs.
- ``registry``: :class:`Registry` (real ``docker-registry``), :class:`TokenAuth`, access log.
- ``tokenserver``: :class:`TokenServer` (distribution token spec, RS256 + x5c).
- ``packages``: deterministic OCI-layout package builders returning :class:`BuiltPackage`.
- ``push``: :func:`skopeo_push`, :func:`raw_push`.
- ``proxy``: :class:`FaultProxy` and :class:`BlobMirror` (a second loopback host).
- ``httpserver``: :class:`TestServer`, the threaded HTTP(S) base of the token server and proxies.
- ``containerd``: :class:`Containerd` (real ``containerd``, private root and socket).
- ``process``: :func:`kill_group`, how the registry and containerd processes are stopped.
- ``cli``: :func:`invoke`, the CLI run in-process; ``testdata``: where the real metadata is.

Scripts outside pytest (``scripts/demo.py``) put the repository root on ``sys.path`` first.
"""
