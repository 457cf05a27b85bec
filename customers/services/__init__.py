"""Customer operations: registration and eligibility, and the message outbox."""
