"""Family recipes: one module per model family, each registering an ``ebmlab.recipes.Recipe``."""
