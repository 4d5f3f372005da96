"""Risk signals: Identity Protection and the sign-in log, polled, triaged and raised as alerts.

- ``graph_port``: the Graph reads and writes the poller needs, paced for Identity Protection's
  budget (about one request per second per tenant, shared with every other app).
- ``watermarks``: where each source was read up to, and the ids already seen in the overlap.
- ``triage``: who the user is (department, wave and its state, MFA, admin roles, break-glass).
- ``signals``: what each detection, risky user or sign-in is worth as an alert (pure).
- ``responses``: revoke sessions / confirm compromised, dry-run by default, audited.
- ``poll``: one poll of every source, as the timer runs it.
"""
