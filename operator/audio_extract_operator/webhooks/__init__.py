"""Webhook events: what is sent (events), how it is signed (signing), when (policy), how (send),
and the operator-side driving of deliveries recorded in the resource's status (driver).

Everything but ``send`` and ``driver`` is pure and unit-tested without a network or a cluster.
"""
