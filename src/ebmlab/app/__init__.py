"""The application layer: the ``ebmlab`` command line, the family recipes, reports, pictures,
comparisons and benchmarks. It is the only part of ebmlab that knows the families; nothing in the
library below it imports it."""
