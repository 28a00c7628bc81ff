"""Code shared by the API, the operator and the worker: the custom resource, ids, formats, address guard."""
