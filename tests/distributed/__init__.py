"""A package so that the shared stack (package scope) stops after the last distributed test, not at the end
of the session: its idle scheduler, dag-processor, triggerer and worker would take CPU from every later test."""
