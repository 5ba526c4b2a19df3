//! Test support: a real Kubernetes API server for the controller tests.
