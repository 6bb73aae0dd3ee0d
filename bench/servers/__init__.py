"""Reference servers the benchmark runs next to Modelship: the seed-style baseline and two ceilings."""
