"""``copy.copy`` of any crossfetch error keeps its facts (the HEAD-fallback error is built as a
copy of the GET's error; a 401 there crashed with "missing ... 'status'")."""

from __future__ import annotations

import copy

from crossfetch.errors import ConfigError, CrossfetchError, NotFound, Unauthorized


def test_copies_keep_type_and_facts() -> None:
    errors: list[CrossfetchError] = [
        Unauthorized("401", status=401, url="https://r/v2/", host="r", fix="creds",
                     detail={"scheme": "Bearer"}),
        NotFound("404", status=404, url="https://r/v2/x"),
        ConfigError("bad", file="cfg.yaml", line=3, fix="f"),
    ]
    for err in errors:
        out = copy.copy(err)
        assert type(out) is type(err) and out is not err
        assert out.__dict__ == err.__dict__ and out.args == err.args
        out.message = "changed"
        assert err.message != "changed"
