"""Offline harness: the stack program under mocks, the policy pack over gRPC, the preview CLI."""
