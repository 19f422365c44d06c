"""Independent test infrastructure: never uses crossfetch to put content anywhere.

- ``certs``: :func:`make_pki` — trusted, untrusted, expired, wrong-host, self-signed, client certs.
- ``registry``: :class:`Registry` (real ``docker-registry``), :class:`TokenAuth`, access log.
- ``tokenserver``: :class:`TokenServer` (distribution token spec, RS256 + x5c).
- ``packages``: deterministic OCI-layout package builders returning :class:`BuiltPackage`.
- ``push``: :func:`skopeo_push`, :func:`raw_push`.
- ``proxy``: :class:`FaultProxy` and :class:`BlobMirror` (a second loopback host).

Scripts outside pytest run from the repository root: ``PYTHONPATH=. python demo.py``.
"""
