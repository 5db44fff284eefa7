"""Security family: the Pod Security Standards by profile, then hardening, identity, images, network, metadata."""

from __future__ import annotations

from ..framework import Family
from . import hardening, identity, image, metadata, network, pss_baseline, pss_restricted

FAMILY = Family(
    "security",
    "Security",
    (
        pss_baseline.SECTION,
        pss_restricted.SECTION,
        hardening.SECTION,
        identity.SECTION,
        image.SECTION,
        network.SECTION,
        metadata.SECTION,
    ),
)
