"""Who may ask: trust anchors and chains, request signatures, authorized names, the proxy header, remote answers checked."""
