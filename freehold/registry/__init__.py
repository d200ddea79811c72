"""The registry: models leave the laptop they were made on, byte for byte, with their lineage.

- ``freehold.registry.oci``: a model as an OCI image manifest, names, references, digests;
- ``freehold.registry.server``: the OCI distribution API at ``/v2/`` (``freehold serve --registry``);
- ``freehold.registry.client``: ``push`` and ``pull`` against it or any OCI registry.
"""

from freehold.registry.client import PullResult, PushResult, pull, push

__all__ = ["PullResult", "PushResult", "pull", "push"]
