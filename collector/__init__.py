"""fedledger collector: sources → tamper-evident ledger."""

__version__ = "0.1.0"
