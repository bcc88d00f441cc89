"""The event contract now lives in the top-level `contract` package; this name stays for the modules not yet moved."""
from contract.events import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS  # noqa: F401
