"""The status page of the admin listener (``GET /``): what an operator sees at a glance.

* :mod:`~certstatus.statuspage.traffic` keeps a ring of samples of the workers' Prometheus
  counters in the supervisor (rates and percentiles over the last minutes);
* :mod:`~certstatus.statuspage.facts` gathers, per CA, what the existing services know
  (readiness, sources and their refresh schedule, signers, generator backlog, traffic);
* :mod:`~certstatus.statuspage.verdict` turns a CA's facts into red / amber / green with the
  reason in words;
* :mod:`~certstatus.statuspage.render` writes the HTML (with :mod:`~certstatus.statuspage.sparkline`
  for the inline SVG), and :mod:`~certstatus.statuspage.page` filters and pages the CAs.

Who may see it is the admin listener's business (:mod:`certstatus.admin.page_routes`).
"""
