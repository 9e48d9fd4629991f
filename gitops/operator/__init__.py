"""The GitOps operator: declared applications kept converged (see docs/controller.md)."""
