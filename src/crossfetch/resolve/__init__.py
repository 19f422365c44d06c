"""Dependency resolution: Masterminds semver semantics (:mod:`.semver`), the whole-graph
resolver, what Crossplane will do with the graph, and a solution that satisfies everyone."""
