"""Webhook events: what is sent (events), how it is signed (signing), when (policy), how (send),
the per-batch delivery step recorded in the resource's status (driver) and the operator's loop
that runs it for every batch owing deliveries (pump). ``receiver`` is a verifying test receiver.

``events``, ``signing`` and ``policy`` are pure and unit-tested without a network or a cluster.
"""
