"""Speed and quality benchmarks: ``ebmlab bench NAME`` runs ``bench_NAME.run(quick)``."""
