"""Experiments: a spec (TOML) → a matrix of runs → one SQLite file → CSV and one HTML report.

Modules: :mod:`.spec` (the spec file), :mod:`.topology` (emulated topologies, their routes and
environment), :mod:`.links` (the timing of an emulated link, pure) and :mod:`.emulation` (the
transport wrappers a node installs), :mod:`.runner` (the matrix, faults, sampling), :mod:`.store`
(the SQLite results), :mod:`.report` (plots, HTML, CSV)."""
