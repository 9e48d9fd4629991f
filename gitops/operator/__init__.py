"""The GitOps operator: declared applications kept converged (placeholder; the lead owns this file)."""
