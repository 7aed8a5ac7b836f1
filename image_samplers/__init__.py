"""Image samplers from the same research line: BEGAN and PPGN."""
