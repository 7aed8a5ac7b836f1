"""`textgan bench`: policy-gradient variants compared over seeds with honest statistics.

Modules: ``stats`` (IQM, stratified-bootstrap CIs, probability of improvement), ``grid``
(the resumable (agent, seed) grid), ``evaluate`` (metrics at one temperature and the
temperature sweep), ``report`` (CSV, summary.md, plots), ``presets``, ``runners`` (the real
agents behind the grid) and ``cli`` (the command).
"""
